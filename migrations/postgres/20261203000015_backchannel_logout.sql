-- OpenID Connect Back-Channel Logout 1.0.
-- Every browser session has a `sid`, carried into the codes it approves, the refresh
-- families they start and the ID tokens they issue. It outlives the cookie's id: a user
-- who signs in again in the same browser keeps the session, and its sid.
ALTER TABLE sessions ADD COLUMN sid TEXT NOT NULL DEFAULT '';
UPDATE sessions SET sid = md5(random()::text || clock_timestamp()::text || encode(id_hash, 'hex'));
CREATE UNIQUE INDEX sessions_sid ON sessions (sid);
ALTER TABLE authorization_codes ADD COLUMN sid TEXT;
ALTER TABLE refresh_families ADD COLUMN sid TEXT;
-- Where a client wants its logout tokens (NULL = none).
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT;
-- The clients that received an ID token in a live session: told when it ends.
CREATE TABLE session_clients (
    sid        TEXT    NOT NULL,
    client_id  TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (sid, client_id)
);
CREATE INDEX session_clients_user ON session_clients (user_id);
-- One logout token per ended session and client, at most (the primary key), delivered
-- by any process's dispatcher with retries, as the email outbox is.
CREATE TABLE logout_deliveries (
    sid             TEXT    NOT NULL,
    client_id       TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id         TEXT    NOT NULL,
    jti             TEXT    NOT NULL UNIQUE,
    status          TEXT    NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed')),
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    last_error      TEXT,
    created_at      BIGINT  NOT NULL,
    sent_at         BIGINT ,
    PRIMARY KEY (sid, client_id)
);
CREATE INDEX logout_deliveries_due ON logout_deliveries (next_attempt_at) WHERE status = 'queued';
CREATE INDEX logout_deliveries_created ON logout_deliveries (created_at);
