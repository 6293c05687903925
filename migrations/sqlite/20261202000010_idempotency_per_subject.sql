-- Idempotency keys belong to (client, subject): two users of one app never share a key
-- space, so a replay is only ever the caller's own response. Keys stored before this
-- migration belong to no subject and are never matched again (they expire within 24 h).
CREATE TABLE idempotency_keys_new (
    client_id       TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    -- the token's `sub`: a user's id, or the client's own id for client credentials
    subject         TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_hash    BYTEA   NOT NULL CHECK (length(request_hash) = 32),
    claim           TEXT    NOT NULL,
    claimed_until   BIGINT  NOT NULL,
    status          BIGINT  CHECK (status IS NULL OR status BETWEEN 100 AND 599),
    headers         TEXT,
    body            TEXT,
    created_at      BIGINT  NOT NULL,
    expires_at      BIGINT  NOT NULL,
    PRIMARY KEY (client_id, subject, idempotency_key)
);
INSERT INTO idempotency_keys_new (client_id, subject, idempotency_key, request_hash, claim,
    claimed_until, status, headers, body, created_at, expires_at)
SELECT client_id, '', idempotency_key, request_hash, claim, claimed_until, status, headers,
    body, created_at, expires_at FROM idempotency_keys;
DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys_new RENAME TO idempotency_keys;
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);
