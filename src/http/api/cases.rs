//! The cases endpoints: parse, call the cases domain, send what it answers.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::Response;
use serde::Deserialize;

use super::idempotency::{self, Begun, respond};
use crate::cases::{
    self, Actor, AppendLineItems, Case, CaseList, CaseUpdate, CreateCaseRequest, ListFilter, Status,
};
use crate::error::{ApiError, Problem};
use crate::http::extract::{ApiJson, ApiQuery, parse_json};
use crate::http::guard::{Caller, ScopePolicy};
use crate::http::state::AppState;
use crate::model::Scope;
use crate::oauth::tokens::AccessClaims;
use crate::store::idempotency::{Claim, StoredResponse};

/// Reading cases: `cases.read`, `cases.write` or `api`.
pub struct CasesRead;
impl ScopePolicy for CasesRead {
    const ANY_OF: &'static [Scope] = &[Scope::CasesRead, Scope::CasesWrite, Scope::Api];
}

/// Creating and changing cases: `cases.write` or `api`.
pub struct CasesWrite;
impl ScopePolicy for CasesWrite {
    const ANY_OF: &'static [Scope] = &[Scope::CasesWrite, Scope::Api];
}

/// The caller of a cases endpoint, as the domain sees it.
fn actor(claims: &AccessClaims) -> Actor<'_> {
    Actor {
        client_id: &claims.client_id,
        subject: &claims.sub,
    }
}

/// The bearer-guard answers of a route that needs cases.write.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum WriteErrors {
    /// Missing, invalid, expired or revoked token.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The token lacks cases.write (or api).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
}

/// The bearer-guard answers of a route that reads cases.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum ReadErrors {
    /// Missing, invalid, expired or revoked token.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The token lacks cases.read, cases.write or api.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
}

/// Creates a case, its line items and its notification email, all or nothing.
#[utoipa::path(post, path = "/api/v1/cases", tag = "cases",
    security(("bearer" = ["cases.write"]), ("oauth2" = ["cases.write"])),
    request_body = CreateCaseRequest,
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]{1,255}$", description = "1 to 255 visible ASCII characters, scoped to the client and kept 24 h. The same request again gets the first response back (with `Idempotent-Replayed: true`); another request with the key is 422; a repeat while the first still runs is 409.")),
    responses(
        (status = 201, description = "Created (or, with `Idempotent-Replayed: true`, the stored answer of the first request with this Idempotency-Key); Location names the case, ETag its version", body = Case,
            headers(("Location" = String, description = "/api/v1/cases/{id}"), ("ETag" = String, description = "\"<version>\""),
                ("Idempotent-Replayed" = String, description = "`true` on a replay"))),
        (status = 409, description = "A request with this Idempotency-Key is still in progress (Retry-After: 1)", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "Malformed JSON or Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        WriteErrors,
        (status = 413, description = "Body larger than body_limit_bytes", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, each named by its path, or an Idempotency-Key used before with another request; nothing was written", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_case(
    State(state): State<AppState>,
    caller: Caller<CasesWrite>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let claims = &caller.claims;
    idempotent(
        &state,
        claims,
        "/api/v1/cases",
        &headers,
        &body,
        |claim| async {
            let result = async {
                let request: CreateCaseRequest = parse_json(&headers, &body)?;
                cases::create(&state.cases(), actor(claims), &request, claim.as_ref()).await
            }
            .await;
            (claim, result)
        },
    )
    .await
}

/// A case the caller may see (another owner's case is 404, as if it did not exist).
#[utoipa::path(get, path = "/api/v1/cases/{id}", tag = "cases",
    security(("bearer" = ["cases.read"]), ("oauth2" = ["cases.read"])),
    params(("id" = String, Path, description = "Case id")),
    responses(
        (status = 200, description = "The case; ETag is its version", body = Case,
            headers(("ETag" = String, description = "\"<version>\""))),
        ReadErrors,
        (status = 404, description = "No such case for this caller", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_case(
    State(state): State<AppState>,
    caller: Caller<CasesRead>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(respond(
        cases::get(&state.cases(), actor(&caller.claims), &id).await?,
    ))
}

/// Query of `GET /api/v1/cases`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only cases with this status.
    pub status: Option<Status>,
    /// Only cases created at or after this instant (RFC 3339).
    #[param(format = DateTime)]
    pub created_from: Option<String>,
    /// Only cases created before this instant (RFC 3339).
    #[param(format = DateTime)]
    pub created_to: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Lists the caller's cases, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/cases", tag = "cases",
    security(("bearer" = ["cases.read"]), ("oauth2" = ["cases.read"])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of cases", body = CaseList),
        (status = 400, description = "Unknown or malformed query parameter", body = Problem, content_type = "application/problem+json"),
        ReadErrors,
        (status = 422, description = "Invalid limit, instant or cursor", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_cases(
    State(state): State<AppState>,
    caller: Caller<CasesRead>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<axum::Json<CaseList>, ApiError> {
    let filter = ListFilter {
        status: params.status,
        created_from: params.created_from.as_deref(),
        created_to: params.created_to.as_deref(),
        limit: params.limit,
        cursor: params.cursor.as_deref(),
    };
    let page = cases::list(&state.cases(), actor(&caller.claims), &filter).await?;
    Ok(axum::Json(page))
}

fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or_default().trim();
    // RFC 9110 §13.1.1: `*` matches any current representation, as no If-Match does here.
    if value == "*" {
        return Ok(None);
    }
    // The ETag is `"<version>"`; the bare number, as some HTTP clients send it, is taken too.
    let digits = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    let version = Some(digits)
        .filter(|d| (1..=18).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<i64>().ok());
    version.map(Some).ok_or_else(|| {
        ApiError::BadRequest("If-Match must be an ETag this API returned, like \"3\"".to_owned())
    })
}

/// Changes a case. With `If-Match: "<version>"` the change applies only to that version
/// (412 otherwise); without it, a change racing another one is refused with 409.
#[utoipa::path(patch, path = "/api/v1/cases/{id}", tag = "cases",
    security(("bearer" = ["cases.write"]), ("oauth2" = ["cases.write"])),
    params(("id" = String, Path, description = "Case id"),
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^(\*|"[0-9]{1,18}"|[0-9]{1,18})$"#,
            description = "The ETag the change is based on, like `\"3\"` (or `*`: any version)")),
    request_body = CaseUpdate,
    responses(
        (status = 200, description = "The changed case; ETag is its new version", body = Case),
        (status = 400, description = "Malformed JSON or If-Match", body = Problem, content_type = "application/problem+json"),
        WriteErrors,
        (status = 404, description = "No such case for this caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Changed concurrently (without If-Match); read it and retry", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "If-Match does not name the current version", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields or a status move that is not allowed", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_case(
    State(state): State<AppState>,
    caller: Caller<CasesWrite>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(update): ApiJson<CaseUpdate>,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    let ctx = state.cases();
    let updated = cases::update(&ctx, actor(&caller.claims), &id, expected, update).await?;
    Ok(respond(updated))
}

/// Appends line items to a case atomically (all or none), after the existing ones.
#[utoipa::path(post, path = "/api/v1/cases/{id}/line-items", tag = "cases",
    security(("bearer" = ["cases.write"]), ("oauth2" = ["cases.write"])),
    params(("id" = String, Path, description = "Case id"),
        ("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]{1,255}$", description = "As for POST /api/v1/cases")),
    request_body = AppendLineItems,
    responses(
        (status = 201, description = "The case with the new items; ETag is its new version", body = Case),
        (status = 400, description = "Malformed JSON or Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        WriteErrors,
        (status = 404, description = "No such case for this caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A request with this Idempotency-Key is still in progress", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid items (named by path), more than 200 in all, or an Idempotency-Key reused", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn append_line_items(
    State(state): State<AppState>,
    caller: Caller<CasesWrite>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let claims = &caller.claims;
    let path = format!("/api/v1/cases/{id}/line-items");
    idempotent(&state, claims, &path, &headers, &body, |claim| async {
        let result = async {
            let request: AppendLineItems = parse_json(&headers, &body)?;
            let ctx = state.cases();
            cases::append_line_items(&ctx, actor(claims), &id, &request, claim.as_ref()).await
        }
        .await;
        (claim, result)
    })
    .await
}

/// Runs a POST under its Idempotency-Key (if any): replays a stored response, or runs
/// `work` with the claim and releases the claim when `work` fails.
async fn idempotent<F, Fut>(
    state: &AppState,
    claims: &AccessClaims,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    work: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(Option<Claim>) -> Fut,
    Fut: std::future::Future<Output = (Option<Claim>, Result<StoredResponse, ApiError>)>,
{
    let owner = crate::store::idempotency::Owner {
        client_id: &claims.client_id,
        subject: &claims.sub,
    };
    let claim = match idempotency::begin(state, owner, &Method::POST, path, headers, body).await? {
        Begun::Replay(response) => return Ok(response),
        Begun::Run(claim) => claim,
    };
    let (claim, result) = work(claim).await;
    if result.is_err()
        && let Some(claim) = claim
    {
        claim.release(&state.store).await;
    }
    result.map(respond)
}
