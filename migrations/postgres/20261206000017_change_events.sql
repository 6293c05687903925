-- Change events: one row per committed change to a case, written in the change's own
-- transaction (a transactional outbox), then streamed, pushed to webhooks and published.
--
-- `seq` is the replay position. It is taken from `event_counters` as the last statement
-- before COMMIT, and that UPDATE holds the counter's row lock until the transaction
-- ends: a later writer waits for the earlier one to commit or roll back, so positions
-- are dense (no gaps, even after a rollback) and become visible in order. A reader that
-- has seen position N can never later see a new event at a position below N.
CREATE TABLE change_events (
    seq               BIGINT  PRIMARY KEY CHECK (seq >= 1),
    type              TEXT    NOT NULL CHECK (type IN ('case.created', 'case.updated', 'case.line_items_added')),
    entity            TEXT    NOT NULL CHECK (entity IN ('case')),
    record_id         TEXT    NOT NULL,
    change_type       TEXT    NOT NULL CHECK (change_type IN ('CREATE', 'UPDATE')),
    -- a JSON array of field names
    changed_fields    TEXT    NOT NULL,
    -- Unix milliseconds
    committed_at      BIGINT  NOT NULL,
    transaction_key   TEXT    NOT NULL,
    sequence_number   BIGINT  NOT NULL CHECK (sequence_number >= 1),
    commit_user       TEXT    NOT NULL,
    client_id         TEXT    NOT NULL,
    -- who may read the event: the case's owner, or the client that created it
    owner_id          TEXT,
    created_by        TEXT    NOT NULL,
    -- the case after the change, as the API answers it (JSON)
    data              TEXT    NOT NULL
);
CREATE INDEX change_events_owner ON change_events (owner_id, seq);
CREATE INDEX change_events_created_by ON change_events (created_by, seq);

-- `last_seq`: the newest position taken; `pruned_through`: the newest position deleted
-- by retention (a resume from before it would miss events, and is refused). Two rows,
-- so that pruning never waits on the writers' lock.
CREATE TABLE event_counters (
    name   TEXT    PRIMARY KEY CHECK (name IN ('last_seq', 'pruned_through')),
    value  BIGINT  NOT NULL CHECK (value >= 0)
);
INSERT INTO event_counters (name, value) VALUES ('last_seq', 0), ('pruned_through', 0);

-- Who may read every case's events (an integration such as a warehouse sync).
ALTER TABLE clients ADD COLUMN may_read_all_events BOOLEAN NOT NULL DEFAULT FALSE;

-- Webhook endpoints registered by administrators. The signing secret is kept encrypted
-- under the master key (it must be read to sign); during a rotation the previous one
-- signs too, until `previous_secret_until`. `cursor_seq` is the last event fanned out
-- to the endpoint's deliveries.
CREATE TABLE webhook_endpoints (
    id                     TEXT    PRIMARY KEY,
    url                    TEXT    NOT NULL CHECK (length(url) BETWEEN 8 AND 2048),
    description            TEXT    CHECK (description IS NULL OR length(description) <= 200),
    -- a JSON array of event types; empty: every type
    event_types            TEXT    NOT NULL,
    secret_sealed          BYTEA   NOT NULL,
    previous_secret_sealed BYTEA,
    previous_secret_until  BIGINT,
    status                 TEXT    NOT NULL CHECK (status IN ('active', 'disabled')),
    disabled_reason        TEXT,
    cursor_seq             BIGINT  NOT NULL CHECK (cursor_seq >= 0),
    created_at             BIGINT  NOT NULL,
    updated_at             BIGINT  NOT NULL
);

-- One delivery per event and endpoint (the unique key), claimed and retried as the email
-- outbox is; every attempt is recorded.
CREATE TABLE webhook_deliveries (
    id               TEXT    PRIMARY KEY,
    endpoint_id      TEXT    NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_seq        BIGINT  NOT NULL,
    event_type       TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
    attempts         BIGINT  NOT NULL CHECK (attempts >= 0),
    next_attempt_at  BIGINT  NOT NULL,
    last_error       TEXT,
    created_at       BIGINT  NOT NULL,
    sent_at          BIGINT,
    UNIQUE (endpoint_id, event_seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'queued';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at, id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_seq) WHERE status = 'queued';

CREATE TABLE webhook_attempts (
    delivery_id  TEXT    NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt      BIGINT  NOT NULL CHECK (attempt >= 1),
    at           BIGINT  NOT NULL,
    -- the endpoint's HTTP status; NULL when no answer came (timeout, refused, blocked)
    status_code  BIGINT,
    error        TEXT,
    duration_ms  BIGINT  NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

-- How far each publisher (NATS JetStream) has published the log, and which process holds
-- it (one publishes at a time; a lease that lapses passes to another).
CREATE TABLE event_relays (
    name        TEXT    PRIMARY KEY,
    last_seq    BIGINT  NOT NULL CHECK (last_seq >= 0),
    updated_at  BIGINT  NOT NULL,
    holder      TEXT,
    held_until  BIGINT
);
