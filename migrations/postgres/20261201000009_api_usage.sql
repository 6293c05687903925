-- Resource API calls per client per UTC day (YYYY-MM-DD). Every process adds what it
-- counted once per sync interval.
CREATE TABLE api_usage (
    client_id   TEXT    NOT NULL,
    day         TEXT    NOT NULL,
    calls       BIGINT  NOT NULL CHECK (calls >= 0),
    PRIMARY KEY (client_id, day)
);
