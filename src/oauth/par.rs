//! Pushed authorization requests (RFC 9126): a client posts its authorization request
//! to the server directly, authenticated, and sends the browser with only `client_id`
//! and the `request_uri` it got back. The parameters never travel through the browser,
//! so they cannot be read or changed there.

use secrecy::ExposeSecret as _;
use serde::Serialize;
use utoipa::ToSchema;

use super::authorize::{AuthorizationRequest, PUSHED_TTL_SECS, REQUEST_URI_PREFIX, Rejection};
use super::dpop::{Proof, invalid_proof};
use super::params::Params;
use super::{Ctx, secret};
use crate::error::{OAuthError, OAuthErrorCode};
use crate::model::Client;
use crate::store;

/// The answer to a pushed request (RFC 9126 §2.2).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"request_uri": "urn:ietf:params:oauth:request_uri:Kq3…", "expires_in": 60}))]
pub struct PushedRequest {
    /// Send the browser to `/oauth2/authorize?client_id=…&request_uri=…` with it, once.
    pub request_uri: String,
    /// Seconds until it expires unused.
    pub expires_in: i64,
}

/// The client's credentials, which are never stored with the request.
const CREDENTIALS: &[&str] = &["client_secret", "client_assertion", "client_assertion_type"];

/// Validates and stores `client`'s authorization request: the same rules as the
/// authorization endpoint, answered here as JSON errors. A DPoP proof with the push binds
/// the code to its key (`dpop_jkt`, RFC 9449 §10.1).
pub async fn push(
    ctx: &Ctx<'_>,
    client: &Client,
    params: &Params,
    proof: Option<&Proof>,
) -> Result<PushedRequest, OAuthError> {
    if params.get("request_uri").is_some() {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidRequest,
            "a pushed request cannot carry a request_uri",
        ));
    }
    let mut params = params.clone();
    for name in CREDENTIALS {
        params.remove(name);
    }
    params.set("client_id", client.client_id.as_str());
    if let Some(proof) = proof {
        match params.get("dpop_jkt") {
            Some(jkt) if jkt != proof.jkt => {
                return Err(invalid_proof(
                    "dpop_jkt is not the thumbprint of the DPoP proof's key",
                ));
            }
            _ => params.set("dpop_jkt", &proof.jkt),
        }
    }
    AuthorizationRequest::validate_pushed(ctx, &params)
        .await
        .map_err(refused)?;
    let token = secret::generate();
    let request_uri = format!("{REQUEST_URI_PREFIX}{}", token.expose_secret());
    let now = ctx.clock.unix();
    store::pushed::insert(
        ctx.store,
        &secret::hash(&request_uri),
        client.client_id.as_str(),
        &params.to_form(),
        now,
        now + PUSHED_TTL_SECS,
    )
    .await?;
    Ok(PushedRequest {
        request_uri,
        expires_in: PUSHED_TTL_SECS,
    })
}

/// A refused request as the JSON error of the PAR endpoint (RFC 9126 §2.3): the error the
/// authorization endpoint would have sent back.
fn refused(rejection: Rejection) -> OAuthError {
    let (error, description) = match rejection {
        Rejection::Page(description) => ("invalid_request".to_owned(), description),
        Rejection::Redirect(response) => {
            let get = |name: &str| {
                response
                    .params
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            (get("error"), get("error_description"))
        }
    };
    let code = match error.as_str() {
        "invalid_scope" => OAuthErrorCode::InvalidScope,
        "unauthorized_client" => OAuthErrorCode::UnauthorizedClient,
        "unsupported_response_type" => OAuthErrorCode::UnsupportedResponseType,
        "request_not_supported" => OAuthErrorCode::RequestNotSupported,
        "server_error" => OAuthErrorCode::ServerError,
        _ => OAuthErrorCode::InvalidRequest,
    };
    OAuthError::new(code, description)
}
