-- A key id is unique per client, not across clients: partners name their JWKS keys as
-- they like ("1", "2025-01"), and two partners may pick the same name.
CREATE TABLE client_keys_new (
    kid        TEXT    NOT NULL CHECK (length(kid) BETWEEN 1 AND 128),
    client_id  TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    kty        TEXT    NOT NULL CHECK (kty IN ('RSA', 'EC', 'OKP')),
    public_pem TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, kid)
);
INSERT INTO client_keys_new (kid, client_id, kty, public_pem, created_at)
    SELECT kid, client_id, kty, public_pem, created_at FROM client_keys;
DROP TABLE client_keys;
ALTER TABLE client_keys_new RENAME TO client_keys;
