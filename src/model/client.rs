//! A registered client ("connected app"), as the store returns it.

use serde::Serialize;
use utoipa::ToSchema;

use super::{
    AuthMethod, ClientId, ClientType, CorsOrigin, GrantType, LogoutUri, Profile, RedirectUri,
    Scope, ScopeSet, SigningAlg, Username,
};

/// The SHA-256 of a secret, which is all the database keeps.
pub type SecretHash = [u8; 32];

/// A registered client ("connected app").
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Client {
    /// The public identifier (`client_id`).
    pub client_id: ClientId,
    /// Name shown to users on the consent page.
    pub name: String,
    /// `public` or `confidential` (RFC 6749 §2.1).
    pub client_type: ClientType,
    /// How the client authenticates at the token endpoint.
    pub token_endpoint_auth_method: AuthMethod,
    /// SHA-256 of the client secret; never serialized.
    #[serde(skip)]
    pub secret_hash: Option<SecretHash>,
    /// Redirect URIs, matched exactly.
    pub redirect_uris: Vec<RedirectUri>,
    /// Grant types the client may use.
    pub grant_types: Vec<GrantType>,
    /// Scopes the client may request.
    #[schema(value_type = Vec<Scope>)]
    pub scopes: ScopeSet,
    /// Browser origins allowed to call token, userinfo, revoke and the API cross-origin.
    pub cors_origins: Vec<CorsOrigin>,
    /// Access token lifetime override (seconds); `null` = the server default.
    pub access_token_ttl_secs: Option<i64>,
    /// Refresh token lifetime override (seconds; 0 = valid until revoked); `null` = default.
    pub refresh_token_ttl_secs: Option<i64>,
    /// Refresh token idle timeout override (seconds); `null` = default.
    pub refresh_token_idle_secs: Option<i64>,
    /// When true only pre-authorized users may use the client ("admin approved users").
    pub admin_approved_only: bool,
    /// The algorithm of the client's ID tokens (OpenID Connect Registration §2);
    /// `null` = the server's `id_token_signing_alg` (RS256 unless configured).
    pub id_token_signed_response_alg: Option<SigningAlg>,
    /// A resource server: may introspect access and refresh tokens issued to any client.
    pub may_introspect: bool,
    /// An integration (a warehouse sync): its tokens read every case's change events.
    pub may_read_all_events: bool,
    /// Every token request must carry a DPoP proof, and its access tokens are bound to
    /// the proof's key (RFC 9449 §5.2).
    pub dpop_bound_access_tokens: bool,
    /// The client's DPoP proofs must carry a server nonce (RFC 9449 §8), also when the
    /// server does not require one of every client.
    pub require_dpop_nonce: bool,
    /// The client must push its authorization requests (RFC 9126 §6): the authorization
    /// endpoint takes only a `request_uri` from `/oauth2/par`.
    pub require_pushed_authorization_requests: bool,
    /// A security profile the client is held to (`fapi2`: the FAPI 2.0 Security
    /// Profile); `null` = none.
    pub profile: Option<Profile>,
    /// Where RP-initiated logout may send the browser back to, matched exactly.
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    /// Where the server POSTs a logout token when a session in which the client received
    /// an ID token ends (OpenID Connect Back-Channel Logout 1.0); `null` = not told.
    pub backchannel_logout_uri: Option<LogoutUri>,
    /// Users an administrator approved: they skip consent and may be JWT-bearer subjects.
    pub pre_authorized_users: Vec<Username>,
    /// Disabled clients cannot authenticate or obtain tokens.
    pub enabled: bool,
    /// When the client was registered.
    #[serde(serialize_with = "crate::clock::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// When the client last changed.
    #[serde(serialize_with = "crate::clock::as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

impl Client {
    /// Whether the client is held to the FAPI 2.0 Security Profile.
    pub fn fapi2(&self) -> bool {
        self.profile == Some(Profile::Fapi2)
    }

    /// Whether the client may use `grant`.
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Whether `username` may use the client: anyone, unless an administrator limited it
    /// to the users they approved (`admin_approved_only`).
    pub fn admits(&self, username: &Username) -> bool {
        !self.admin_approved_only || self.pre_authorized_users.contains(username)
    }
}
