-- The web-server flow: browser sessions, sign-in throttling, consents, authorization codes
-- and refresh-token families. Codes and tokens are stored only as SHA-256 hashes.

-- Signed-in browsers. The cookie holds 256 random bits; only their hash is stored.
CREATE TABLE sessions (
    id_hash    BYTEA   PRIMARY KEY CHECK (length(id_hash) = 32),
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time  BIGINT  NOT NULL,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Failed sign-ins per account ('user:NAME') and per address ('addr:IP'), shared by replicas.
CREATE TABLE login_failures (
    throttle_key TEXT    PRIMARY KEY,
    failures     BIGINT  NOT NULL CHECK (failures >= 0),
    window_start BIGINT  NOT NULL,
    locked_until BIGINT
);

-- What a user approved for a client: skipped next time for the same or fewer scopes.
CREATE TABLE consents (
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    -- space-separated, like the `scope` parameter
    scope      TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX consents_client ON consents (client_id);

-- Refresh tokens descend from one grant; reuse of a rotated one revokes the whole family.
CREATE TABLE refresh_families (
    id          TEXT    PRIMARY KEY,
    client_id   TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope       TEXT    NOT NULL,
    auth_time   BIGINT  NOT NULL,
    created_at  BIGINT  NOT NULL,
    -- NULL: valid until revoked
    expires_at  BIGINT,
    revoked_at  BIGINT,
    revoke_reason TEXT
);
CREATE INDEX refresh_families_user_client ON refresh_families (user_id, client_id);

CREATE TABLE refresh_tokens (
    token_hash      BYTEA   PRIMARY KEY CHECK (length(token_hash) = 32),
    family_id       TEXT    NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    created_at      BIGINT  NOT NULL,
    -- NULL: no idle timeout
    idle_expires_at BIGINT,
    -- set when this token was exchanged for its successor
    rotated_at      BIGINT,
    -- the access token issued together with this refresh token (revoked with the family)
    access_jti      TEXT    NOT NULL,
    access_exp      BIGINT  NOT NULL,
    -- the token this one replaced (NULL for the first of a family)
    parent_hash     BYTEA   CHECK (parent_hash IS NULL OR length(parent_hash) = 32)
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- Authorization codes: 60 s, single use, bound to everything the request said.
CREATE TABLE authorization_codes (
    code_hash      BYTEA   PRIMARY KEY CHECK (length(code_hash) = 32),
    client_id      TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id        TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri   TEXT    NOT NULL,
    scope          TEXT    NOT NULL,
    code_challenge TEXT,
    nonce          TEXT,
    auth_time      BIGINT  NOT NULL,
    created_at     BIGINT  NOT NULL,
    expires_at     BIGINT  NOT NULL,
    used_at        BIGINT,
    -- what the first use issued, revoked if the code is replayed
    access_jti     TEXT,
    access_exp     BIGINT,
    family_id      TEXT REFERENCES refresh_families (id) ON DELETE SET NULL
);
CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at);
