-- Users (resource owners) and clients (connected apps).
-- Times are Unix seconds (UTC); lists are JSON arrays of strings.

CREATE TABLE users (
    id            TEXT    PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    email         TEXT    NOT NULL,
    display_name  TEXT,
    password_hash TEXT    NOT NULL,
    enabled       BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    CHECK (length(username) BETWEEN 1 AND 64),
    CHECK (length(email) BETWEEN 3 AND 254)
);

CREATE TABLE clients (
    id                      TEXT    PRIMARY KEY,
    name                    TEXT    NOT NULL,
    client_type             TEXT    NOT NULL CHECK (client_type IN ('public', 'confidential')),
    auth_method             TEXT    NOT NULL CHECK (auth_method IN
                                ('client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none')),
    secret_hash             BYTEA,
    redirect_uris           JSONB   NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(redirect_uris) = 'array'),
    grant_types             JSONB   NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(grant_types) = 'array'),
    scopes                  JSONB   NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(scopes) = 'array'),
    cors_origins            JSONB   NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(cors_origins) = 'array'),
    access_token_ttl_secs   BIGINT  CHECK (access_token_ttl_secs > 0),
    refresh_token_ttl_secs  BIGINT  CHECK (refresh_token_ttl_secs >= 0),
    refresh_token_idle_secs BIGINT  CHECK (refresh_token_idle_secs > 0),
    admin_approved_only     BOOLEAN NOT NULL DEFAULT FALSE,
    enabled                 BOOLEAN NOT NULL DEFAULT TRUE,
    created_at              BIGINT  NOT NULL,
    updated_at              BIGINT  NOT NULL,
    CHECK (length(name) BETWEEN 1 AND 200),
    -- a public client never authenticates; a confidential one always does
    CHECK ((client_type = 'public') = (auth_method = 'none')),
    -- exactly the shared-secret methods keep a secret (a 32-byte SHA-256)
    CHECK ((auth_method IN ('client_secret_basic', 'client_secret_post'))
           = (secret_hash IS NOT NULL AND length(secret_hash) = 32))
);

-- Users an administrator approved for a client ("admin approved users are pre-authorized").
CREATE TABLE client_preauthorized_users (
    client_id  TEXT   NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id    TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, user_id)
);
CREATE INDEX client_preauthorized_users_user ON client_preauthorized_users (user_id);
