-- The change-event log, one row per record changed in a transaction instead of one row
-- per event: a composite create's `case.created` and `case.line_items_added` describe
-- the same case after the same transaction, so they share one row, one copy of the case
-- and one entry in each index. That halves what an event-writing transaction writes.
--
-- Positions are still per event and dense: a row holds the events at positions
-- `first_seq` through `last_seq` (its key), numbered `first_number`, … within their
-- transaction; `events` lists them in order as JSON objects (type, change_type,
-- changed_fields). Positions are taken from `event_counters` exactly as before.
CREATE TABLE change_log (
    last_seq         BIGINT  PRIMARY KEY CHECK (last_seq >= 1),
    first_seq        BIGINT  NOT NULL CHECK (first_seq >= 1 AND first_seq <= last_seq),
    first_number     BIGINT  NOT NULL CHECK (first_number >= 1),
    -- a JSON array: {"type", "change_type", "changed_fields"} for each event, in order
    events           TEXT    NOT NULL,
    entity           TEXT    NOT NULL CHECK (entity IN ('case')),
    record_id        TEXT    NOT NULL,
    -- Unix milliseconds
    committed_at     BIGINT  NOT NULL,
    transaction_key  TEXT    NOT NULL,
    commit_user      TEXT    NOT NULL,
    client_id        TEXT    NOT NULL,
    -- who may read the events: the case's owner, or the client that created it
    owner_id         TEXT,
    created_by       TEXT    NOT NULL,
    -- the case after the change, as the API answers it (JSON)
    data             TEXT    NOT NULL
);

INSERT INTO change_log (last_seq, first_seq, first_number, events, entity, record_id,
    committed_at, transaction_key, commit_user, client_id, owner_id, created_by, data)
SELECT seq, seq, sequence_number,
       json_build_array(json_build_object('type', type, 'change_type', change_type, 'changed_fields', changed_fields::json))::text,
       entity, record_id, committed_at, transaction_key, commit_user, client_id, owner_id,
       created_by, data
FROM change_events;

DROP TABLE change_events;
CREATE INDEX change_log_owner ON change_log (owner_id, last_seq);
CREATE INDEX change_log_created_by ON change_log (created_by, last_seq);
