-- A key id is unique per client, not across clients: partners name their JWKS keys as
-- they like ("1", "2025-01"), and two partners may pick the same name.
ALTER TABLE client_keys DROP CONSTRAINT client_keys_pkey;
ALTER TABLE client_keys ADD PRIMARY KEY (client_id, kid);
ALTER TABLE client_keys ADD CHECK (length(kid) BETWEEN 1 AND 128);
DROP INDEX client_keys_client;
