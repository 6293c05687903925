-- Case notifications each caller (a client and the token's subject) queued per UTC day
-- (Unix day number), counted before each is queued: the daily cap holds on every replica.
CREATE TABLE mail_quota (
    client_id TEXT   NOT NULL,
    subject   TEXT   NOT NULL,
    day       BIGINT NOT NULL,
    queued    BIGINT NOT NULL CHECK (queued >= 0),
    PRIMARY KEY (client_id, subject, day)
);
