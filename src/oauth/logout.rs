//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): validating a logout
//! request. The pages decide whether to ask the user, end the session and send the
//! browser back.

use std::sync::Arc;

use serde::Deserialize;
use url::Url;

use super::params::Params;
use super::tokens::Audience;
use crate::model::Client;
use crate::oauth::Ctx;

/// Longest `state` and `logout_hint` accepted.
const MAX_LEN: usize = 2048;

/// An ID token of this server presented as `id_token_hint` (expired ones too: the RP
/// keeps it for this).
#[derive(Debug, Clone)]
pub struct IdTokenHint {
    /// The user it was issued for.
    pub sub: String,
    /// The client it was issued to.
    pub client_id: String,
}

/// A valid logout request.
#[derive(Debug, Clone)]
pub struct LogoutRequest {
    /// The client asking, named by `client_id` or by the hint's audience.
    pub client: Option<Arc<Client>>,
    /// The verified `id_token_hint`.
    pub hint: Option<IdTokenHint>,
    /// Suggested username of who should be signed out.
    pub logout_hint: Option<String>,
    /// Where to send the browser afterwards, with `state`: a registered URI.
    pub back_to: Option<Url>,
}

impl LogoutRequest {
    /// Validates the parameters; an invalid request is answered with a page (never sent
    /// to an unverified URI): the text says why.
    pub async fn parse(ctx: &Ctx<'_>, params: &Params) -> Result<Self, String> {
        let now = ctx.clock.unix();
        let hint = match params.get("id_token_hint") {
            Some(token) => Some(verify_hint(ctx, token, now).ok_or_else(|| {
                "The id_token_hint is not an ID token of this server.".to_owned()
            })?),
            None => None,
        };
        let named = params.get("client_id");
        if let (Some(named), Some(hint)) = (named, &hint)
            && named != hint.client_id
        {
            return Err("The client_id is not the audience of the id_token_hint.".to_owned());
        }
        let client_id = named.or(hint.as_ref().map(|h| h.client_id.as_str()));
        let client = match client_id {
            Some(id) => Some(
                ctx.client(id)
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "client lookup failed");
                        "The server could not look up the application.".to_owned()
                    })?
                    .filter(|c| c.enabled)
                    .ok_or_else(|| "This application is unknown or disabled.".to_owned())?,
            ),
            None => None,
        };
        let state = params.get("state");
        let logout_hint = params.get("logout_hint");
        if state.is_some_and(|s| s.len() > MAX_LEN)
            || logout_hint.is_some_and(|s| s.len() > MAX_LEN)
        {
            return Err("state and logout_hint are at most 2048 characters.".to_owned());
        }
        let back_to = match (params.get("post_logout_redirect_uri"), &client) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(
                    "A post_logout_redirect_uri needs client_id or id_token_hint.".to_owned(),
                );
            }
            (Some(uri), Some(client)) => {
                if !client
                    .post_logout_redirect_uris
                    .iter()
                    .any(|r| r.as_str() == uri)
                {
                    return Err(
                        "The post_logout_redirect_uri is not registered for this application."
                            .to_owned(),
                    );
                }
                let mut url = Url::parse(uri)
                    .map_err(|_| "The post_logout_redirect_uri is not a valid URI.".to_owned())?;
                if let Some(state) = state {
                    url.query_pairs_mut().append_pair("state", state);
                }
                Some(url)
            }
        };
        Ok(Self {
            client,
            hint,
            logout_hint: logout_hint.map(str::to_owned),
            back_to,
        })
    }

    /// Whether the request itself proves who asks to sign `user_id` out: the client holds
    /// an ID token of that user (and names no one else). Otherwise the user is asked.
    pub fn proves(&self, user_id: &str, username: &str) -> bool {
        self.hint.as_ref().is_some_and(|h| h.sub == user_id)
            && self.logout_hint.as_deref().is_none_or(|h| h == username)
    }
}

#[derive(Deserialize)]
struct HintClaims {
    iss: String,
    sub: String,
    aud: Audience,
}

/// An ID token this server signed with a key it still publishes, whatever its `exp`.
fn verify_hint(ctx: &Ctx<'_>, token: &str, now: i64) -> Option<IdTokenHint> {
    use jsonwebtoken::Algorithm;
    let header = jsonwebtoken::decode_header(token).ok()?;
    // An ID token's `typ`: an access token (`at+jwt`) is no hint.
    if !header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("JWT"))
    {
        return None;
    }
    if !matches!(
        header.alg,
        Algorithm::ES256 | Algorithm::EdDSA | Algorithm::RS256 | Algorithm::PS256
    ) {
        return None;
    }
    let key = ctx.tokens.ring.verifying_key(header.kid.as_deref()?, now)?;
    if key.alg != header.alg {
        return None;
    }
    let mut validation = jsonwebtoken::Validation::new(key.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<HintClaims>(token, &key.decoding, &validation)
        .ok()?
        .claims;
    let client_id = match claims.aud {
        Audience::One(aud) => aud,
        Audience::Many(mut list) if list.len() == 1 => list.remove(0),
        Audience::Many(_) => return None,
    };
    (claims.iss == ctx.issuer).then_some(IdTokenHint {
        sub: claims.sub,
        client_id,
    })
}
