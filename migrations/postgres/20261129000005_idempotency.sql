-- Idempotency-Key: the first request with a key claims it; its response is stored in the
-- same transaction as its writes, and a repeat of the same request gets that response.
CREATE TABLE idempotency_keys (
    client_id       TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    idempotency_key TEXT    NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    -- SHA-256 of method, path and body: the same key with another request is refused
    request_hash    BYTEA   NOT NULL CHECK (length(request_hash) = 32),
    -- random per claim: only the claimant may complete it
    claim           TEXT    NOT NULL,
    -- a claim not completed by then (the process died) may be taken over
    claimed_until   BIGINT  NOT NULL,
    -- NULL while in flight
    status          BIGINT  CHECK (status IS NULL OR status BETWEEN 100 AND 599),
    headers         TEXT,
    body            TEXT,
    created_at      BIGINT  NOT NULL,
    expires_at      BIGINT  NOT NULL,
    PRIMARY KEY (client_id, idempotency_key)
);
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);
