-- OpenID Connect metadata of clients: the algorithm of their ID tokens (NULL = the
-- server's default), resource servers that may introspect any client's tokens, and the
-- URIs RP-initiated logout may return to (matched exactly).
ALTER TABLE clients ADD COLUMN id_token_signed_response_alg TEXT
    CHECK (id_token_signed_response_alg IN ('ES256', 'EdDSA', 'RS256', 'PS256'));
ALTER TABLE clients ADD COLUMN may_introspect BOOLEAN NOT NULL DEFAULT FALSE
    CHECK (may_introspect IN (0, 1));
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]'
    CHECK (json_type(post_logout_redirect_uris) = 'array');
-- The claims an authorization request asked for in its ID token (OpenID Connect Core
-- §5.5, and `acr` for acr_values), space-separated; NULL = none beyond the defaults.
ALTER TABLE authorization_codes ADD COLUMN id_token_claims TEXT;
-- One line of signing keys per algorithm in use, PS256 among them (SQLite changes a CHECK
-- by copying the table).
CREATE TABLE signing_keys_new (
    kid         TEXT    PRIMARY KEY,
    alg         TEXT    NOT NULL CHECK (alg IN ('ES256', 'EdDSA', 'RS256', 'PS256')),
    public_jwk  TEXT    NOT NULL CHECK (json_type(public_jwk) = 'object'),
    private_key BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    -- signs from activate_at (published in JWKS before that) until retire_at
    activate_at INTEGER NOT NULL,
    retire_at   INTEGER,
    CHECK (retire_at IS NULL OR retire_at >= activate_at)
);
INSERT INTO signing_keys_new (kid, alg, public_jwk, private_key, created_at, activate_at, retire_at)
SELECT kid, alg, public_jwk, private_key, created_at, activate_at, retire_at FROM signing_keys;
DROP TABLE signing_keys;
ALTER TABLE signing_keys_new RENAME TO signing_keys;
CREATE INDEX signing_keys_line ON signing_keys (alg, activate_at) WHERE retire_at IS NULL;
