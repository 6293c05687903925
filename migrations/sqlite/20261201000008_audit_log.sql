-- Security-relevant events: sign-ins, consent, tokens issued, refresh reuse, revocations,
-- key rotations and admin changes. Append-only; queried newest first by id.
CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          BIGINT  NOT NULL,
    event       TEXT    NOT NULL,
    outcome     TEXT    NOT NULL CHECK (outcome IN ('success', 'failure')),
    -- who acted: `user:ID`, `client:ID` or `system`
    actor       TEXT    NOT NULL,
    client_id   TEXT,
    user_id     TEXT,
    address     TEXT,
    request_id  TEXT,
    -- a JSON object with the event's particulars (never a secret)
    detail      TEXT    NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_event ON audit_events (event, id);
CREATE INDEX audit_events_client ON audit_events (client_id, id);
CREATE INDEX audit_events_user ON audit_events (user_id, id);
