//! OAuth endpoints: token, introspection, revocation, JWKS and discovery.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::error::{ApiError, OAuthError, OAuthErrorBody, OAuthErrorCode, Problem};
use crate::http::guard::{Caller, FormCaller, OpenIdScope};
use crate::http::state::AppState;
use crate::model::ScopeSet;
use crate::oauth::client_auth::Presented;
use crate::oauth::grants::TokenResponse;
use crate::oauth::id_token::{self, UserInfo};
use crate::oauth::introspection::{self, Introspection};
use crate::oauth::params::Params;
use crate::oauth::{discovery, token_endpoint};
use crate::store;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// A form-encoded OAuth request: its parameters and the client credentials it presents.
pub struct OAuthRequest {
    params: Params,
    presented: Presented,
}

impl FromRequest<AppState> for OAuthRequest {
    type Rejection = OAuthError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, OAuthError> {
        if !crate::http::extract::is_form(request.headers()) {
            return Err(OAuthError::new(
                OAuthErrorCode::InvalidRequest,
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let basic = basic_credentials(request.headers())?;
        let address = crate::ratelimit::address_bucket(&super::ratelimit::client_address(
            request.headers(),
            request.extensions(),
            &state.config.trusted_proxies,
        ))
        .into_owned();
        let origin = request
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let dpop = crate::http::guard::dpop_header(request.headers())
            .map_err(crate::oauth::dpop::invalid_proof)?
            .map(str::to_owned);
        let body = Bytes::from_request(request, state).await.map_err(|e| {
            OAuthError::new(
                OAuthErrorCode::InvalidRequest,
                format!("cannot read the body: {}", e.body_text()),
            )
        })?;
        let params = Params::parse(&body)?;
        let presented = Presented {
            basic,
            client_id: params.get("client_id").map(str::to_owned),
            client_secret: params
                .get("client_secret")
                .map(|s| SecretString::from(s.to_owned())),
            assertion_type: params.get("client_assertion_type").map(str::to_owned),
            assertion: params.get("client_assertion").map(str::to_owned),
            origin,
            address,
            dpop,
        };
        Ok(Self { params, presented })
    }
}

/// `Authorization: Basic` credentials; the id and secret are form-decoded (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, SecretString)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed =
        || OAuthError::new(OAuthErrorCode::InvalidClient, "malformed Basic credentials");
    let text = value.to_str().map_err(|_| malformed())?;
    let Some((scheme, encoded)) = text.split_once(' ') else {
        return Err(malformed());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidClient,
            "only Basic client authentication is accepted here",
        ));
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let unescape = |s: &str| {
        if !s.contains(['%', '+', '&']) {
            return s.to_owned();
        }
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unescape(id), SecretString::from(unescape(secret)))))
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// The token request (documentation of the form fields; which ones apply depends on the grant).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct TokenRequest {
    /// `authorization_code`, `refresh_token`, `client_credentials`,
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523 §2.1) or
    /// `urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4).
    grant_type: String,
    /// device_code: the device code from /oauth2/device_authorization. Until the user
    /// decides the answer is `authorization_pending`; polling faster than `interval` is
    /// `slow_down` (and the interval grows by 5 s); then `access_denied` or
    /// `expired_token`, or the tokens (once).
    device_code: Option<String>,
    /// authorization_code: the code from the redirect.
    code: Option<String>,
    /// authorization_code: the redirect URI of the authorization request, exactly.
    redirect_uri: Option<String>,
    /// authorization_code: the PKCE verifier (RFC 7636).
    code_verifier: Option<String>,
    /// refresh_token: the refresh token (it rotates: use the new one next time).
    refresh_token: Option<String>,
    /// jwt-bearer: a JWT signed with one of the client's registered keys (RS256, PS256,
    /// ES256 or EdDSA): `iss` = the client_id, `sub` = the username of a user
    /// pre-authorized for the client, `aud` = the issuer or this endpoint's URL, `exp` at
    /// most `assertion_max_lifetime_secs` ahead, a `jti` never used before. The answer is
    /// an access token for that user (no refresh token); client authentication is
    /// optional, and when present must be the assertion's `iss`.
    assertion: Option<String>,
    /// Space-separated scopes, within what the client may have (default: all of them).
    scope: Option<String>,
    /// With client_secret_post or none.
    client_id: Option<String>,
    /// With client_secret_post.
    client_secret: Option<String>,
    /// With private_key_jwt: `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
    client_assertion_type: Option<String>,
    /// With private_key_jwt: a JWT signed with one of the client's registered keys.
    client_assertion: Option<String>,
}

/// Introspection and revocation requests.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct TokenOperand {
    /// The token.
    token: String,
    /// `access_token` or `refresh_token`.
    token_type_hint: Option<String>,
    /// With client_secret_post or none.
    client_id: Option<String>,
    /// With client_secret_post.
    client_secret: Option<String>,
}

/// Issues tokens (RFC 6749 §3.2). Clients authenticate with their registered method:
/// HTTP Basic, `client_secret` in the body, or a `client_assertion` (RFC 7523). With a
/// DPoP proof (RFC 9449) in the `DPoP` header, for any grant, the access token is bound to
/// the proof's key (`token_type: DPoP`, `cnf.jkt`), and so is a public client's refresh
/// token; clients registered with `dpop_bound_access_tokens` (and `fapi2` ones) must send
/// one.
#[utoipa::path(post, path = "/oauth2/token", tag = "oauth",
    security(("client_basic" = []), ()),
    params(("DPoP" = Option<String>, Header, description = "A DPoP proof JWT (RFC 9449 §4): `typ` dpop+jwt, ES256, PS256 or EdDSA, the public `jwk` in the header; claims `jti`, `htm` POST, `htu` this endpoint's URL, `iat`, and `nonce` when the server asks for one")),
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Tokens issued", body = TokenResponse, headers(("DPoP-Nonce" = String, description = "When DPoP nonces are required: the nonce for the next proof"))),
        (status = 400, description = "RFC 6749 §5.2 error (invalid_request, invalid_grant, invalid_scope, unauthorized_client, unsupported_grant_type); for the device grant also RFC 8628 §3.5's authorization_pending, slow_down, access_denied and expired_token; RFC 9449's invalid_dpop_proof, and use_dpop_nonce with the nonce in DPoP-Nonce", body = OAuthErrorBody),
        (status = 401, description = "Client authentication failed (invalid_client)", body = OAuthErrorBody, headers(("WWW-Authenticate" = String, description = "`Basic realm=\"gatehouse\", charset=\"UTF-8\", error=\"invalid_client\", error_description=\"…\"`: the body's error, for clients that read the challenge first"))),
    ))]
pub async fn issue_token(
    State(state): State<AppState>,
    request: OAuthRequest,
) -> Result<Response, OAuthError> {
    let response =
        token_endpoint::exchange(&state.oauth(), &request.params, &request.presented).await?;
    let nonce = response
        .dpop_nonce
        .as_deref()
        .and_then(|n| HeaderValue::from_str(n).ok());
    let mut response = no_store(Json(response).into_response());
    if let Some(nonce) = nonce {
        response
            .headers_mut()
            .insert(crate::error::DPOP_NONCE, nonce);
    }
    Ok(response)
}

/// A pushed authorization request (RFC 9126 §2.1): the parameters of GET
/// /oauth2/authorize, and the client's authentication.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct PushedAuthorizationRequest {
    /// `code`.
    response_type: String,
    /// The client (with client_secret_post or none; with Basic it may be left out).
    client_id: Option<String>,
    /// One of the client's registered redirect URIs, exactly.
    redirect_uri: Option<String>,
    /// Space-separated scopes.
    scope: Option<String>,
    /// Returned untouched.
    state: Option<String>,
    /// PKCE (RFC 7636): base64url SHA-256 of the verifier; required of public and
    /// `fapi2` clients.
    code_challenge: Option<String>,
    /// `S256`.
    code_challenge_method: Option<String>,
    /// Echoed in the ID token.
    nonce: Option<String>,
    /// Binds the code to a DPoP key (RFC 9449 §10): its JWK SHA-256 thumbprint. A DPoP
    /// proof sent with the push does the same.
    dpop_jkt: Option<String>,
    /// The other parameters of the authorization endpoint (`prompt`, `max_age`,
    /// `login_hint`, `response_mode`, `claims`, `acr_values`) are taken as there.
    prompt: Option<String>,
    /// With client_secret_post.
    client_secret: Option<String>,
    /// With private_key_jwt.
    client_assertion_type: Option<String>,
    /// With private_key_jwt.
    client_assertion: Option<String>,
}

/// Pushed authorization requests (RFC 9126). The client posts its authorization request
/// here, authenticated as at the token endpoint, and sends the browser to
/// `/oauth2/authorize?client_id=…&request_uri=…`: the parameters never pass through the
/// browser. The `request_uri` expires after 60 s unopened; once opened it stays good while
/// the user signs in and consents (10 minutes), and the code it ends in retires it.
/// Clients registered with `require_pushed_authorization_requests` (and `fapi2` ones)
/// may use no other way.
#[utoipa::path(post, path = "/oauth2/par", tag = "oauth",
    security(("client_basic" = []), ()),
    params(("DPoP" = Option<String>, Header, description = "A DPoP proof (RFC 9449 §10.1): binds the code to its key")),
    request_body(content = PushedAuthorizationRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 201, description = "Stored; use the request_uri once", body = crate::oauth::par::PushedRequest),
        (status = 400, description = "RFC 6749 §5.2 error: what the authorization endpoint would refuse (invalid_request, invalid_scope, unauthorized_client, unsupported_response_type, request_not_supported), or invalid_dpop_proof / use_dpop_nonce (with DPoP-Nonce)", body = OAuthErrorBody),
        (status = 401, description = "Client authentication failed (invalid_client)", body = OAuthErrorBody, headers(("WWW-Authenticate" = String, description = "`Basic realm=\"gatehouse\", charset=\"UTF-8\", error=\"invalid_client\", error_description=\"…\"`: the body's error, for clients that read the challenge first"))),
    ))]
pub async fn push_authorization_request(
    State(state): State<AppState>,
    request: OAuthRequest,
) -> Result<Response, OAuthError> {
    let ctx = state.oauth();
    let client = crate::oauth::client_auth::authenticate(&ctx, &request.presented).await?;
    token_endpoint::check_origin(&ctx, &client, &request.presented)?;
    token_endpoint::within_limit(
        &ctx,
        crate::ratelimit::Policy::TokenClient,
        &crate::ratelimit::client_key(&client, &request.presented.address),
    )
    .await?;
    let proof = crate::oauth::dpop::at_endpoint(
        &ctx,
        &client,
        request.presented.dpop.as_deref(),
        "/oauth2/par",
        false,
    )
    .await?;
    let pushed = crate::oauth::par::push(&ctx, &client, &request.params, proof.as_ref()).await?;
    Ok(no_store(
        (axum::http::StatusCode::CREATED, Json(pushed)).into_response(),
    ))
}

/// The device authorization request (RFC 8628 §3.1–3.2).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct DeviceAuthorizationRequest {
    /// Space-separated scopes, within what the client may have (default: all of them).
    scope: Option<String>,
    /// A public client names itself here; a confidential one authenticates as it is
    /// registered to.
    client_id: Option<String>,
    /// With client_secret_post.
    client_secret: Option<String>,
}

/// Starts the device flow (RFC 8628): a device code to poll the token endpoint with, and
/// a user code the user enters at `verification_uri`. Only clients registered for
/// `urn:ietf:params:oauth:grant-type:device_code`.
#[utoipa::path(post, path = "/oauth2/device_authorization", tag = "oauth",
    security(("client_basic" = []), ()),
    request_body(content = DeviceAuthorizationRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Codes issued", body = crate::oauth::device::DeviceAuthorization),
        (status = 400, description = "RFC 6749 §5.2 error (invalid_request, invalid_scope, unauthorized_client)", body = OAuthErrorBody),
        (status = 401, description = "Client authentication failed (invalid_client)", body = OAuthErrorBody, headers(("WWW-Authenticate" = String, description = "`Basic realm=\"gatehouse\", charset=\"UTF-8\", error=\"invalid_client\", error_description=\"…\"`: the body's error, for clients that read the challenge first"))),
    ))]
pub async fn device_authorization(
    State(state): State<AppState>,
    request: OAuthRequest,
) -> Result<Response, OAuthError> {
    let client =
        crate::oauth::client_auth::authenticate(&state.oauth(), &request.presented).await?;
    crate::oauth::token_endpoint::within_limit(
        &state.oauth(),
        crate::ratelimit::Policy::DeviceClient,
        &crate::ratelimit::client_key(&client, &request.presented.address),
    )
    .await?;
    let answer = crate::oauth::device::start(&state.oauth(), &client, &request.params).await?;
    Ok(no_store(Json(answer).into_response()))
}

/// Token introspection (RFC 7662) for the client the token was issued to.
#[utoipa::path(post, path = "/oauth2/introspect", tag = "oauth",
    security(("client_basic" = []), ()),
    request_body(content = TokenOperand, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The token's state", body = Introspection),
        (status = 400, description = "Malformed request", body = OAuthErrorBody),
        (status = 401, description = "Client authentication failed", body = OAuthErrorBody, headers(("WWW-Authenticate" = String, description = "`Basic realm=\"gatehouse\", charset=\"UTF-8\", error=\"invalid_client\", error_description=\"…\"`: the body's error, for clients that read the challenge first"))),
    ))]
pub async fn introspect_token(
    State(state): State<AppState>,
    request: OAuthRequest,
) -> Result<Response, OAuthError> {
    let answer =
        introspection::introspect(&state.oauth(), &request.params, &request.presented).await?;
    Ok(no_store(Json(answer).into_response()))
}

/// Token revocation (RFC 7009): 200 whether or not the token was known.
#[utoipa::path(post, path = "/oauth2/revoke", tag = "oauth",
    security(("client_basic" = []), ()),
    request_body(content = TokenOperand, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke"),
        (status = 400, description = "Malformed request or unsupported_token_type", body = OAuthErrorBody),
        (status = 401, description = "Client authentication failed", body = OAuthErrorBody, headers(("WWW-Authenticate" = String, description = "`Basic realm=\"gatehouse\", charset=\"UTF-8\", error=\"invalid_client\", error_description=\"…\"`: the body's error, for clients that read the challenge first"))),
    ))]
pub async fn revoke_token(
    State(state): State<AppState>,
    request: OAuthRequest,
) -> Result<Response, OAuthError> {
    introspection::revoke(&state.oauth(), &request.params, &request.presented).await?;
    Ok(no_store(().into_response()))
}

/// OpenID Connect userinfo (Core §5.3): the claims the token's scopes release
/// (`profile`: name, preferred_username, updated_at; `email`: email, email_verified).
#[utoipa::path(get, path = "/oauth2/userinfo", tag = "oauth",
    security(("bearer" = ["openid"]), ("oauth2" = ["openid"])),
    responses(
        (status = 200, description = "The user's claims", body = UserInfo),
        (status = 401, description = "Missing or invalid token (WWW-Authenticate: Bearer)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks `openid`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_userinfo(
    State(state): State<AppState>,
    caller: Caller<OpenIdScope>,
) -> Result<Response, ApiError> {
    userinfo(&state, &caller).await
}

/// The form body of a userinfo POST: the token, when it is not in the Authorization header.
#[derive(Debug, ToSchema)]
pub struct UserInfoForm {
    /// The access token (RFC 6750 §2.2), instead of the Authorization header; never both.
    pub access_token: Option<String>,
}

/// The same as GET (Core §5.3.1 allows both); the token may also come in the form body as
/// `access_token` (RFC 6750 §2.2), never in the query string.
#[utoipa::path(post, path = "/oauth2/userinfo", tag = "oauth",
    security(("bearer" = ["openid"]), ("oauth2" = ["openid"]), ()),
    request_body(content = Option<UserInfoForm>, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The user's claims", body = UserInfo),
        (status = 400, description = "The token was sent in the query string, twice, or both in the header and the body (invalid_request)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token (WWW-Authenticate: Bearer)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token lacks `openid`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn post_userinfo(
    State(state): State<AppState>,
    FormCaller(caller): FormCaller<OpenIdScope>,
) -> Result<Response, ApiError> {
    userinfo(&state, &caller).await
}

async fn userinfo(state: &AppState, caller: &Caller<OpenIdScope>) -> Result<Response, ApiError> {
    let user = store::users::by_id(&state.store, &caller.claims.sub)
        .await?
        .filter(|u| u.enabled)
        .ok_or_else(|| {
            ApiError::invalid_token("the token's user no longer exists or is disabled")
        })?;
    let scope = ScopeSet::parse(&caller.claims.scope).unwrap_or_default();
    Ok(no_store(
        Json(id_token::userinfo(&user, &scope)).into_response(),
    ))
}

/// The public signing keys (RFC 7517): the active key, a key about to sign, and retired
/// keys until their last token has expired.
#[utoipa::path(get, path = "/oauth2/jwks", tag = "oauth",
    responses((status = 200, description = "JWK Set", body = Object, content_type = "application/jwk-set+json")))]
pub async fn get_jwks(State(state): State<AppState>) -> Response {
    let jwks = state.tokens.ring.jwks(state.clock.unix());
    let mut response = Json(jwks).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    response
}

/// OpenID Connect discovery document.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "oauth",
    responses((status = 200, description = "Provider metadata", body = Object)))]
pub async fn get_openid_configuration(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(discovery::metadata(&state.oauth()))
}

/// Authorization server metadata (RFC 8414).
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth",
    responses((status = 200, description = "Authorization server metadata", body = Object)))]
pub async fn get_authorization_server_metadata(
    State(state): State<AppState>,
) -> Json<serde_json::Value> {
    Json(discovery::metadata(&state.oauth()))
}

/// The authorization server's endpoints (the authorization endpoint is a page: see
/// [`crate::http::web`]).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(issue_token))
        .routes(routes!(device_authorization))
        .routes(routes!(push_authorization_request))
        .routes(routes!(introspect_token))
        .routes(routes!(revoke_token))
        .routes(routes!(get_userinfo, post_userinfo))
        .routes(routes!(get_jwks))
        .routes(routes!(get_openid_configuration))
        .routes(routes!(get_authorization_server_metadata))
}
