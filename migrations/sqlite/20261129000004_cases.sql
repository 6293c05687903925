-- Cases with their line items, and the email outbox their notifications go through. Every
-- rule the API checks is also a constraint here, so no path can store what the API refuses.

CREATE TABLE cases (
    id                TEXT    PRIMARY KEY,
    -- shown zero-padded to 8 digits (00001024); unique and increasing
    case_number       BIGINT  NOT NULL UNIQUE CHECK (case_number >= 1024),
    subject           TEXT    NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    description       TEXT    NOT NULL CHECK (length(description) <= 32000),
    status            TEXT    NOT NULL CHECK (status IN ('New', 'Working', 'Escalated', 'Closed')),
    priority          TEXT    NOT NULL CHECK (priority IN ('Low', 'Medium', 'High', 'Critical')),
    origin            TEXT    CHECK (origin IS NULL OR length(origin) BETWEEN 1 AND 40),
    contact_name      TEXT    CHECK (contact_name IS NULL OR length(contact_name) BETWEEN 1 AND 200),
    contact_email     TEXT    CHECK (contact_email IS NULL OR length(contact_email) BETWEEN 3 AND 254),
    -- the user of the token; NULL for a case created with client credentials
    owner_id          TEXT    REFERENCES users (id) ON DELETE SET NULL,
    -- the client that created it
    created_by        TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL CHECK (updated_at >= created_at),
    version           BIGINT  NOT NULL CHECK (version >= 1)
);
CREATE INDEX cases_owner ON cases (owner_id, created_at, id);
CREATE INDEX cases_created_by ON cases (created_by, created_at, id);

CREATE TABLE case_line_items (
    id                TEXT    PRIMARY KEY,
    case_id           TEXT    NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    position          BIGINT  NOT NULL CHECK (position BETWEEN 0 AND 9999),
    sku               TEXT    NOT NULL CHECK (length(sku) BETWEEN 1 AND 64),
    description       TEXT    NOT NULL CHECK (length(description) <= 1000),
    quantity          BIGINT  NOT NULL CHECK (quantity BETWEEN 1 AND 1000000),
    unit_price_minor  BIGINT  NOT NULL CHECK (unit_price_minor BETWEEN 0 AND 100000000000),
    -- ISO 4217 alphabetic code
    currency          TEXT    NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
    UNIQUE (case_id, position)
);

-- Emails to send, written in the transaction that makes them necessary and delivered by
-- the dispatcher afterwards (at least once; message_id stays the same across attempts).
CREATE TABLE email_outbox (
    id                TEXT    PRIMARY KEY,
    case_id           TEXT    REFERENCES cases (id) ON DELETE CASCADE,
    recipient         TEXT    NOT NULL CHECK (length(recipient) BETWEEN 3 AND 254),
    template          TEXT    NOT NULL CHECK (template IN ('case_created')),
    message_id        TEXT    NOT NULL UNIQUE,
    -- queued: waiting or retrying; sent: delivered; failed: gave up after the last attempt
    status            TEXT    NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
    attempts          BIGINT  NOT NULL CHECK (attempts >= 0),
    next_attempt_at   BIGINT  NOT NULL,
    last_error        TEXT,
    created_at        BIGINT  NOT NULL,
    sent_at           BIGINT
);
CREATE INDEX email_outbox_due ON email_outbox (status, next_attempt_at);
CREATE INDEX email_outbox_case ON email_outbox (case_id);
