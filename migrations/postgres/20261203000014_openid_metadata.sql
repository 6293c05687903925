-- OpenID Connect metadata of clients: the algorithm of their ID tokens (NULL = the
-- server's default), resource servers that may introspect any client's tokens, and the
-- URIs RP-initiated logout may return to (matched exactly).
ALTER TABLE clients ADD COLUMN id_token_signed_response_alg TEXT
    CHECK (id_token_signed_response_alg IN ('ES256', 'EdDSA', 'RS256', 'PS256'));
ALTER TABLE clients ADD COLUMN may_introspect BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris JSONB NOT NULL DEFAULT '[]'
    CHECK (jsonb_typeof(post_logout_redirect_uris) = 'array');
-- The claims an authorization request asked for in its ID token (OpenID Connect Core
-- §5.5, and `acr` for acr_values), space-separated; NULL = none beyond the defaults.
ALTER TABLE authorization_codes ADD COLUMN id_token_claims TEXT;
-- One line of signing keys per algorithm in use, PS256 among them.
ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_alg_check;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_alg_check
    CHECK (alg IN ('ES256', 'EdDSA', 'RS256', 'PS256'));
CREATE INDEX signing_keys_line ON signing_keys (alg, activate_at) WHERE retire_at IS NULL;
