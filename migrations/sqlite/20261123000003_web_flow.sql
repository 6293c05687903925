-- The web-server flow: browser sessions, sign-in throttling, consents, authorization codes
-- and refresh-token families. Codes and tokens are stored only as SHA-256 hashes.

-- Signed-in browsers. The cookie holds 256 random bits; only their hash is stored.
CREATE TABLE sessions (
    id_hash    BLOB    PRIMARY KEY CHECK (length(id_hash) = 32),
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Failed sign-ins per account ('user:NAME') and per address ('addr:IP'), shared by replicas.
CREATE TABLE login_failures (
    throttle_key TEXT    PRIMARY KEY,
    failures     INTEGER NOT NULL CHECK (failures >= 0),
    window_start INTEGER NOT NULL,
    locked_until INTEGER
);

-- What a user approved for a client: skipped next time for the same or fewer scopes.
CREATE TABLE consents (
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    -- space-separated, like the `scope` parameter
    scope      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX consents_client ON consents (client_id);

-- Refresh tokens descend from one grant; reuse of a rotated one revokes the whole family.
CREATE TABLE refresh_families (
    id          TEXT    PRIMARY KEY,
    client_id   TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope       TEXT    NOT NULL,
    auth_time   INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    -- NULL: valid until revoked
    expires_at  INTEGER,
    revoked_at  INTEGER,
    revoke_reason TEXT
);
CREATE INDEX refresh_families_user_client ON refresh_families (user_id, client_id);

CREATE TABLE refresh_tokens (
    token_hash      BLOB    PRIMARY KEY CHECK (length(token_hash) = 32),
    family_id       TEXT    NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    -- NULL: no idle timeout
    idle_expires_at INTEGER,
    -- set when this token was exchanged for its successor
    rotated_at      INTEGER,
    -- the access token issued together with this refresh token (revoked with the family)
    access_jti      TEXT    NOT NULL,
    access_exp      INTEGER NOT NULL,
    -- the token this one replaced (NULL for the first of a family)
    parent_hash     BLOB    CHECK (parent_hash IS NULL OR length(parent_hash) = 32)
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- Rotation is one statement: inserting a successor (INSERT … SELECT from a parent not yet
-- rotated) marks the parent rotated in the same statement. SQLite runs one writer at a
-- time, so two requests presenting one token cannot both insert a successor.
CREATE TRIGGER refresh_tokens_rotate AFTER INSERT ON refresh_tokens
WHEN NEW.parent_hash IS NOT NULL
BEGIN
    UPDATE refresh_tokens SET rotated_at = NEW.created_at WHERE token_hash = NEW.parent_hash;
END;

-- Authorization codes: 60 s, single use, bound to everything the request said.
CREATE TABLE authorization_codes (
    code_hash      BLOB    PRIMARY KEY CHECK (length(code_hash) = 32),
    client_id      TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id        TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri   TEXT    NOT NULL,
    scope          TEXT    NOT NULL,
    code_challenge TEXT,
    nonce          TEXT,
    auth_time      INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER,
    -- what the first use issued, revoked if the code is replayed
    access_jti     TEXT,
    access_exp     INTEGER,
    family_id      TEXT REFERENCES refresh_families (id) ON DELETE SET NULL
);
CREATE INDEX authorization_codes_expires_at ON authorization_codes (expires_at);
