//! Closed sets of protocol strings: client types, authentication methods, grant types.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Invalid;

protocol_enum!(
    /// Whether a client can keep a secret (RFC 6749 §2.1).
    ClientType, "client type" {
        /// Runs on the user's device (SPA, mobile, CLI); cannot keep a secret.
        Public = "public",
        /// Runs on a server; authenticates at the token endpoint.
        Confidential = "confidential",
    }
);

protocol_enum!(
    /// A security profile a client is held to.
    Profile, "profile" {
        /// The FAPI 2.0 Security Profile: pushed requests, PKCE S256, DPoP-bound tokens,
        /// `private_key_jwt` with ES256, PS256 or EdDSA and the issuer as the assertion's
        /// audience, ID tokens not in RS256, no refresh-token rotation.
        Fapi2 = "fapi2",
    }
);

protocol_enum!(
    /// How a client authenticates at the token endpoint (RFC 7591 §2).
    AuthMethod, "token endpoint auth method" {
        /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1).
        ClientSecretBasic = "client_secret_basic",
        /// `client_id` and `client_secret` in the form body.
        ClientSecretPost = "client_secret_post",
        /// A JWT signed with one of the client's registered keys (RFC 7523 §2.2).
        PrivateKeyJwt = "private_key_jwt",
        /// No authentication: public clients.
        None = "none",
    }
);

impl AuthMethod {
    /// Whether the method uses a server-generated shared secret.
    pub fn uses_secret(self) -> bool {
        matches!(
            self,
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
        )
    }
}

protocol_enum!(
    /// A `grant_type` of the token endpoint.
    GrantType, "grant type" {
        /// RFC 6749 §4.1, with PKCE.
        AuthorizationCode = "authorization_code",
        /// RFC 6749 §6, with rotation.
        RefreshToken = "refresh_token",
        /// RFC 6749 §4.4.
        ClientCredentials = "client_credentials",
        /// RFC 7523 §2.1: a partner's signed assertion.
        JwtBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer",
        /// RFC 8628: devices without a keyboard.
        DeviceCode = "urn:ietf:params:oauth:grant-type:device_code",
    }
);

impl GrantType {
    /// Whether tokens of this grant act for a user (who delegates scopes to the client).
    pub fn acts_for_user(self) -> bool {
        !matches!(self, GrantType::ClientCredentials)
    }
}

protocol_enum!(
    /// A JWS algorithm the server signs with (RFC 7518 §3, RFC 8037): each in use has its
    /// own line of keys in the key ring.
    SigningAlg, "signing algorithm" {
        /// ECDSA P-256 with SHA-256: fast to sign and small (access tokens by default).
        ES256 = "ES256",
        /// Ed25519.
        EdDSA = "EdDSA",
        /// RSA 2048, PKCS#1 v1.5 with SHA-256: OpenID Connect's default for ID tokens
        /// (about 1 ms to sign).
        RS256 = "RS256",
        /// RSA 2048, PSS with SHA-256.
        PS256 = "PS256",
    }
);
