-- Daily API calls per client and subject (the token's `sub`; '' when counted per client),
-- so that the daily cap of one user of an app is not spent by another.
CREATE TABLE api_usage_new (
    client_id   TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    day         TEXT    NOT NULL,
    calls       BIGINT  NOT NULL CHECK (calls >= 0),
    PRIMARY KEY (client_id, subject, day)
);
INSERT INTO api_usage_new (client_id, subject, day, calls)
SELECT client_id, '', day, calls FROM api_usage;
DROP TABLE api_usage;
ALTER TABLE api_usage_new RENAME TO api_usage;
