//! The `claims` request parameter (OpenID Connect Core §5.5) and `acr_values` (§3.1.2.1):
//! which claims the ID token carries beyond its defaults.

use serde_json::{Map, Value};

use super::AuthorizeErrorCode;
use super::parse::{Refusal, refuse};
use crate::oauth::params::Params;

/// The authentication context Gatehouse asserts in `acr`: the user signed in with a
/// password (the only way to sign in).
pub const ACR_PASSWORD: &str = "urn:gatehouse:acr:password";

/// Longest `claims` parameter accepted, bytes.
pub const MAX_CLAIMS_LEN: usize = 4096;

/// Claims an ID token carries when asked (within what the granted scopes release), in the
/// order they are stored.
pub const REQUESTABLE: &[&str] = &[
    "acr",
    "name",
    "preferred_username",
    "updated_at",
    "email",
    "email_verified",
];

/// What a request asked of the ID token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimsRequest {
    /// Requestable claims asked for, in [`REQUESTABLE`] order.
    pub id_token: Vec<&'static str>,
}

impl ClaimsRequest {
    /// The names as stored with the code: space-separated, `None` when there are none.
    pub fn id_token_names(&self) -> Option<String> {
        (!self.id_token.is_empty()).then(|| self.id_token.join(" "))
    }
}

/// Reads `claims` and `acr_values`. Unknown claims are ignored (Core §5.5); the
/// `userinfo` member is checked but asks for nothing more, since userinfo already returns
/// every claim the granted scopes release. An essential `acr` whose values Gatehouse
/// cannot assert is a failed authentication (Core §5.5.1.1): `access_denied`.
pub(super) fn parse(params: &Params) -> Result<ClaimsRequest, Refusal> {
    let mut asked: Vec<&'static str> = Vec::new();
    if params
        .get("acr_values")
        .is_some_and(|v| !v.trim().is_empty())
    {
        asked.push("acr");
    }
    if let Some(raw) = params.get("claims") {
        if raw.len() > MAX_CLAIMS_LEN {
            return refuse(
                AuthorizeErrorCode::InvalidRequest,
                format!("claims is longer than {MAX_CLAIMS_LEN} bytes"),
            );
        }
        let Ok(Value::Object(request)) = serde_json::from_str::<Value>(raw) else {
            return refuse(
                AuthorizeErrorCode::InvalidRequest,
                "claims must be a JSON object (OpenID Connect Core §5.5)",
            );
        };
        for (member, entries) in &request {
            let Value::Object(entries) = entries else {
                return refuse(
                    AuthorizeErrorCode::InvalidRequest,
                    format!("claims.{member} must be a JSON object"),
                );
            };
            for (name, entry) in entries {
                check_entry(member, name, entry)?;
            }
            if member == "id_token" {
                asked.extend(REQUESTABLE.iter().filter(|c| entries.contains_key(**c)));
            }
        }
        if let Some(acr) = request.get("id_token").and_then(|m| m.get("acr")) {
            check_acr(acr)?;
        }
    }
    Ok(ClaimsRequest {
        id_token: REQUESTABLE
            .iter()
            .copied()
            .filter(|c| asked.contains(c))
            .collect(),
    })
}

/// An individual claim request: `null`, or an object with `essential` (a boolean),
/// `value` or `values` (an array).
fn check_entry(member: &str, name: &str, entry: &Value) -> Result<(), Refusal> {
    let malformed = |what: &str| {
        refuse(
            AuthorizeErrorCode::InvalidRequest,
            format!("claims.{member}.{name}: {what}"),
        )
    };
    match entry {
        Value::Null => Ok(()),
        Value::Object(spec) => {
            if spec.get("essential").is_some_and(|e| !e.is_boolean()) {
                return malformed("essential must be true or false");
            }
            if spec.get("values").is_some_and(|v| !v.is_array()) {
                return malformed("values must be an array");
            }
            Ok(())
        }
        _ => malformed("must be null or a JSON object"),
    }
}

/// An essential `acr` naming values must include [`ACR_PASSWORD`].
fn check_acr(acr: &Value) -> Result<(), Refusal> {
    let Some(spec) = acr.as_object() else {
        return Ok(());
    };
    let essential = spec.get("essential").and_then(Value::as_bool) == Some(true);
    let named: Vec<&Value> = spec
        .get("value")
        .into_iter()
        .chain(
            spec.get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        .collect();
    if essential && !named.is_empty() && !named.iter().any(|v| *v == ACR_PASSWORD) {
        return refuse(
            AuthorizeErrorCode::AccessDenied,
            format!(
                "the essential acr cannot be met: this server signs users in with a password ({ACR_PASSWORD})"
            ),
        );
    }
    Ok(())
}

/// The ID-token claims of `asked` (stored names) that `released` has: `released` is the
/// userinfo answer for the granted scopes, so nothing beyond them is added.
pub fn pick(asked: &str, released: &Map<String, Value>) -> Map<String, Value> {
    asked
        .split(' ')
        .filter_map(|name| released.get(name).map(|v| (name.to_owned(), v.clone())))
        .collect()
}
