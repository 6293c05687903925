-- Idempotency keys belong to (client, subject): two users of one app never share a key
-- space, so a replay is only ever the caller's own response. Keys stored before this
-- migration belong to no subject and are never matched again (they expire within 24 h).
-- the token's `sub`: a user's id, or the client's own id for client credentials
ALTER TABLE idempotency_keys ADD COLUMN subject TEXT NOT NULL DEFAULT '';
ALTER TABLE idempotency_keys ALTER COLUMN subject DROP DEFAULT;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (client_id, subject, idempotency_key);
