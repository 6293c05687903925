-- Sender-constrained tokens (DPoP, RFC 9449), pushed authorization requests (PAR,
-- RFC 9126) and the FAPI 2.0 Security Profile.
-- A client may require DPoP-bound tokens of every token request it makes, and a DPoP
-- nonce in every proof (the server-wide setting requires one of every client).
ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN require_dpop_nonce BOOLEAN NOT NULL DEFAULT FALSE;
-- A code requested with `dpop_jkt` is redeemed only with a proof of that key, and a
-- public client's refresh-token family is bound to the key its tokens were issued for
-- (JWK SHA-256 thumbprints, RFC 7638).
ALTER TABLE authorization_codes ADD COLUMN dpop_jkt TEXT;
ALTER TABLE refresh_families ADD COLUMN dpop_jkt TEXT;
-- Proof ids (jti) seen, per key, until the proof would be too old anyway: a proof is
-- accepted once, by whichever replica sees it first.
CREATE TABLE used_dpop_proofs (
    jkt        TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (jkt, jti)
);
CREATE INDEX used_dpop_proofs_expires_at ON used_dpop_proofs (expires_at);

-- A client may be required to push its authorization requests; a client of the `fapi2`
-- profile is held to the FAPI 2.0 Security Profile.
ALTER TABLE clients ADD COLUMN require_pushed_authorization_requests BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN profile TEXT CHECK (profile IN ('fapi2'));
-- Pushed authorization requests: the parameters, by the SHA-256 of their request_uri.
-- A request unopened expires a minute after it was pushed; the authorization endpoint's
-- first visit gives the user ten minutes to sign in and consent; the code it ends in
-- deletes it.
CREATE TABLE pushed_requests (
    uri_hash   BYTEA   PRIMARY KEY CHECK (octet_length(uri_hash) = 32),
    client_id  TEXT    NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    params     TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    opened_at  BIGINT,
    expires_at BIGINT  NOT NULL
);
CREATE INDEX pushed_requests_expires_at ON pushed_requests (expires_at);
