//! The OpenAPI 3.1 document and the Swagger UI that serves it at /docs (assets embedded).

use axum::Router;
use utoipa::openapi::OpenApi as Spec;
use utoipa::openapi::security::{
    AuthorizationCode, ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes,
    SecurityScheme,
};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::http::state::AppState;
use crate::model::Scope;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatehouse",
        description = "OAuth 2.0 / OpenID Connect authorization server and the resource API it protects.\n\n\
            API errors are RFC 9457 `application/problem+json` documents; OAuth endpoint errors follow RFC 6749 §5.2.\n\n\
            Limits: request bodies larger than the configured `body_limit_bytes` (default 1 MiB) are answered 413; \
            requests running longer than `request_timeout_secs` (default 30 s) are answered 408.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "oauth", description = "OAuth 2.0 authorization server: tokens, introspection, revocation, keys, discovery"),
        (name = "api", description = "The resource API (bearer tokens)"),
        (name = "cases", description = "Cases: the composite create (case, line items and notification email in one transaction) and reads. Limits: at most 200 line items per case; subject 1-255 characters, description up to 32,000, sku 1-64, quantity 1-1,000,000, unit price 0-100,000,000,000 minor units, currency three upper-case letters (ISO 4217)."),
        (name = "events", description = "Change events: every committed change to a case, in commit order, each with a replay id to resume after (Server-Sent Events or JSON pages; scope `events.read`). Kept `events_retention_hours` (72 h by default). Webhooks (Standard Webhooks v1) and NATS JetStream carry the same events."),
        (name = "admin", description = "Administration of clients, users, signing keys and webhooks (scope `admin`)"),
        (name = "operations", description = "Health, readiness and metrics for operators and load balancers"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, spec: &mut Spec) {
        let scopes = || {
            Scopes::from_iter(
                Scope::ALL
                    .iter()
                    .map(|s| (s.as_str(), scope_description(*s))),
            )
        };
        let components = spec.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::with_description(
                [
                    Flow::AuthorizationCode(AuthorizationCode::new(
                        "/oauth2/authorize",
                        "/oauth2/token",
                        scopes(),
                    )),
                    Flow::ClientCredentials(ClientCredentials::new("/oauth2/token", scopes())),
                ],
                "OAuth 2.0: authorization code with PKCE for apps acting for a user, client \
                 credentials for servers. Partners may also use the JWT bearer grant (RFC 7523) \
                 and devices the device authorization grant (RFC 8628) at the same token endpoint.",
            )),
        );
        components.add_security_scheme(
            "client_basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "Client authentication at the token, introspection and revocation \
                         endpoints (RFC 6749 §2.3.1): the client id and secret, each \
                         form-urlencoded. Public clients send only `client_id` in the form; \
                         `client_secret_post` and `private_key_jwt` clients authenticate in \
                         the form instead.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token (RFC 9068 JWT) in the Authorization header",
                    ))
                    .build(),
            ),
        );
    }
}

fn scope_description(scope: Scope) -> &'static str {
    match scope {
        Scope::OpenId => "Sign in with OpenID Connect",
        Scope::Profile => "Your name",
        Scope::Email => "Your email address",
        Scope::OfflineAccess => "Stay signed in (refresh tokens)",
        Scope::Api => "Use the API on your behalf",
        Scope::CasesRead => "Read cases",
        Scope::CasesWrite => "Create and change cases",
        Scope::EventsRead => "Read the change events of cases",
        Scope::Grants => "List and withdraw the apps you have granted access",
        Scope::Admin => "Administer clients, users and keys",
    }
}

/// The document's fixed parts (info, security schemes, tags); routes add their paths.
pub fn base() -> Spec {
    ApiDoc::openapi()
}

/// The generated document, as served at /openapi.json and committed as openapi/openapi.json.
pub fn spec() -> Spec {
    complete(crate::routes().split_for_parts().1)
}

/// Finishes the document the routes generated: adds the management listener's routes,
/// then see [`document_extractor_errors`].
pub fn complete(mut spec: Spec) -> Spec {
    spec.merge(crate::http::management_routes().split_for_parts().1);
    document_extractor_errors(&mut spec);
    document_rate_limits(&mut spec);
    spec
}

/// Adds 429 (a rate limit refused the request) and 503 (the shared limiter is down and the
/// server fails closed) to every rate-limited operation: the token and device endpoints
/// (RFC 6749 §5.2 bodies) and every bearer-protected route (problem documents).
fn document_rate_limits(spec: &mut Spec) {
    use utoipa::openapi::{
        ContentBuilder, HeaderBuilder, Ref, RefOr, ResponseBuilder, Type, schema::ObjectBuilder,
    };

    let answer = |description: &str, media: &str, schema: &str| {
        let header = |text: &str, kind: Type| {
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(kind)))
                .description(Some(text))
                .build()
        };
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .header("Retry-After", header("Seconds to wait before retrying", Type::Integer))
                .header(
                    "RateLimit",
                    header(
                        "Per policy: requests remaining (r) and seconds until the quota is whole again (t)",
                        Type::String,
                    ),
                )
                .header(
                    "RateLimit-Policy",
                    header("Per policy: quota (q) per window of w seconds", Type::String),
                )
                .content(
                    media,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(schema)))
                        .build(),
                )
                .build(),
        )
    };
    for (path, item) in spec.paths.paths.iter_mut() {
        let oauth = matches!(
            path.as_str(),
            "/oauth2/token" | "/oauth2/par" | "/oauth2/device_authorization"
        );
        let bearer =
            path.starts_with("/api/") || path.starts_with("/admin/") || path == "/oauth2/userinfo";
        let (media, schema) = match (oauth, bearer) {
            (true, _) => ("application/json", "OAuthErrorBody"),
            (false, true) => ("application/problem+json", "Problem"),
            (false, false) => continue,
        };
        for op in operations(item) {
            for (status, description) in [
                (
                    "429",
                    "A rate limit (or the daily API quota) refused the request",
                ),
                (
                    "503",
                    "A store the replicas share (the rate limiter, or where spent DPoP proofs are kept) did not answer, and the server fails closed",
                ),
            ] {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| answer(description, media, schema));
            }
        }
    }
}

/// Adds the answers every JSON body and every query string can get — the extractors give
/// them whatever the handler does — to each operation that does not describe them itself.
fn document_extractor_errors(spec: &mut Spec) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

    let problem = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build(),
        )
    };
    for item in spec.paths.paths.values_mut() {
        for op in operations(item) {
            let json_body = op.request_body.as_ref().is_some_and(|b| match b {
                RefOr::T(b) => b.content.contains_key("application/json"),
                RefOr::Ref(_) => false,
            });
            let query = op.parameters.iter().flatten().any(|p| match p {
                RefOr::T(p) => p.parameter_in == ParameterIn::Query,
                RefOr::Ref(_) => false,
            });
            let mut defaults = Vec::new();
            if json_body {
                defaults.extend([
                    ("400", "Malformed JSON (the position is in `detail`)"),
                    ("413", "Body larger than body_limit_bytes"),
                    ("415", "Content-Type is not application/json"),
                    (
                        "422",
                        "Invalid fields, each named by its JSON path in `errors`",
                    ),
                ]);
            }
            if query {
                defaults.push(("400", "A malformed query parameter (named in `detail`)"));
            }
            for (status, description) in defaults {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| problem(description));
            }
        }
    }
}

/// The operations of a path item that routes here have.
fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .flatten()
}

/// The committed form of the document: pretty JSON with a trailing newline.
pub fn spec_json() -> Result<String, serde_json::Error> {
    Ok(spec().to_pretty_json()? + "\n")
}

/// Swagger UI at /docs and the document at /openapi.json, served from the binary.
/// Its Authorize button signs in through the authorization-code flow with PKCE as the
/// built-in public docs client, so every call can be tried from the page.
pub fn swagger_ui(spec: Spec) -> Router<AppState> {
    let scopes = crate::seed::DOCS_CLIENT_SCOPES
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    let oauth = utoipa_swagger_ui::oauth::Config::new()
        .client_id(crate::seed::DOCS_CLIENT_ID)
        .app_name("Gatehouse API docs")
        .scopes(scopes)
        .use_pkce_with_authorization_code_grant(true);
    SwaggerUi::new("/docs")
        .url("/openapi.json", spec)
        .oauth(oauth)
        .into()
}
