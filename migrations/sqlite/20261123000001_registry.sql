-- Users (resource owners) and clients (connected apps).
-- Times are Unix seconds (UTC); lists are JSON arrays of strings.

CREATE TABLE users (
    id            TEXT    PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    email         TEXT    NOT NULL,
    display_name  TEXT,
    password_hash TEXT    NOT NULL,
    enabled       BOOLEAN NOT NULL DEFAULT TRUE CHECK (enabled IN (0, 1)),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    CHECK (length(username) BETWEEN 1 AND 64),
    CHECK (length(email) BETWEEN 3 AND 254)
);

CREATE TABLE clients (
    id                      TEXT    PRIMARY KEY,
    name                    TEXT    NOT NULL,
    client_type             TEXT    NOT NULL CHECK (client_type IN ('public', 'confidential')),
    auth_method             TEXT    NOT NULL CHECK (auth_method IN
                                ('client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none')),
    secret_hash             BLOB,
    redirect_uris           TEXT    NOT NULL DEFAULT '[]' CHECK (json_type(redirect_uris) = 'array'),
    grant_types             TEXT    NOT NULL DEFAULT '[]' CHECK (json_type(grant_types) = 'array'),
    scopes                  TEXT    NOT NULL DEFAULT '[]' CHECK (json_type(scopes) = 'array'),
    cors_origins            TEXT    NOT NULL DEFAULT '[]' CHECK (json_type(cors_origins) = 'array'),
    access_token_ttl_secs   INTEGER CHECK (access_token_ttl_secs > 0),
    refresh_token_ttl_secs  INTEGER CHECK (refresh_token_ttl_secs >= 0),
    refresh_token_idle_secs INTEGER CHECK (refresh_token_idle_secs > 0),
    admin_approved_only     BOOLEAN NOT NULL DEFAULT FALSE CHECK (admin_approved_only IN (0, 1)),
    enabled                 BOOLEAN NOT NULL DEFAULT TRUE CHECK (enabled IN (0, 1)),
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL,
    CHECK (length(name) BETWEEN 1 AND 200),
    -- a public client never authenticates; a confidential one always does
    CHECK ((client_type = 'public') = (auth_method = 'none')),
    -- exactly the shared-secret methods keep a secret (a 32-byte SHA-256)
    CHECK ((auth_method IN ('client_secret_basic', 'client_secret_post'))
           = (secret_hash IS NOT NULL AND length(secret_hash) = 32))
);

-- Users an administrator approved for a client ("admin approved users are pre-authorized").
CREATE TABLE client_preauthorized_users (
    client_id  TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, user_id)
);
CREATE INDEX client_preauthorized_users_user ON client_preauthorized_users (user_id);
