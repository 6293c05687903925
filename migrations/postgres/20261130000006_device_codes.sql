-- Device authorization grant (RFC 8628): one row per device_authorization request.
-- The device_code is stored only as its SHA-256; the user_code (8 letters of
-- BCDFGHJKLMNPQRSTVWXZ, stored without the hyphen) is unique among live codes.
CREATE TABLE device_codes (
    device_code_hash BYTEA    PRIMARY KEY CHECK (length(device_code_hash) = 32),
    user_code        TEXT    NOT NULL UNIQUE CHECK (length(user_code) = 8),
    client_id        TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    scope            TEXT    NOT NULL,
    status           TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'approved', 'denied', 'issued')),
    -- who approved or denied, and when they had signed in
    user_id          TEXT    REFERENCES users (id) ON DELETE CASCADE,
    auth_time        BIGINT,
    -- the polling interval the device must keep (grows by 5 s with each slow_down)
    poll_interval    BIGINT  NOT NULL CHECK (poll_interval > 0),
    last_polled_at   BIGINT,
    created_at       BIGINT  NOT NULL,
    expires_at       BIGINT  NOT NULL,
    CHECK ((status = 'pending') = (user_id IS NULL))
);
CREATE INDEX device_codes_expires_at ON device_codes (expires_at);
