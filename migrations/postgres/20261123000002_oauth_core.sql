-- Signing keys, client assertion keys, revoked access tokens, used assertion ids.

-- Our signing keys. The private key is PKCS#8 DER sealed with AES-256-GCM under the master
-- key (nonce || ciphertext || tag, the kid as associated data).
CREATE TABLE signing_keys (
    kid         TEXT    PRIMARY KEY,
    alg         TEXT    NOT NULL CHECK (alg IN ('ES256', 'EdDSA', 'RS256')),
    public_jwk  JSONB   NOT NULL CHECK (jsonb_typeof(public_jwk) = 'object'),
    private_key BYTEA   NOT NULL,
    created_at  BIGINT NOT NULL,
    -- signs from activate_at (published in JWKS before that) until retire_at
    activate_at BIGINT NOT NULL,
    retire_at   BIGINT,
    CHECK (retire_at IS NULL OR retire_at >= activate_at)
);

-- Public keys a client signs its assertions with (private_key_jwt, JWT bearer grant).
CREATE TABLE client_keys (
    kid        TEXT    PRIMARY KEY,
    client_id  TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    kty        TEXT    NOT NULL CHECK (kty IN ('RSA', 'EC', 'OKP')),
    public_pem TEXT    NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX client_keys_client ON client_keys (client_id);

-- Revoked access tokens, kept until they would have expired anyway.
CREATE TABLE revoked_tokens (
    jti        TEXT    PRIMARY KEY,
    client_id  TEXT    NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_revoked_at ON revoked_tokens (revoked_at);

-- Assertion ids already used (single use until the assertion expires).
CREATE TABLE used_assertions (
    client_id  TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
