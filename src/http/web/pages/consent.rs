//! The consent page: what the client asks for, approve or deny.

use askama::Template;
use axum::Form;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use crate::audit::Event;
use crate::http::state::AppState;
use crate::http::web::authorize::{answer, login_location};
use crate::http::web::error::{PageResult, WebError};
use crate::http::web::{describe_scope, page, see_other, session};
use crate::model::User;
use crate::oauth::authorize::{self, AuthorizationRequest, AuthorizeErrorCode};
use crate::oauth::login::SignIn;

#[derive(Template)]
#[template(path = "consent.html", config = "src/http/web/askama.toml")]
pub(super) struct ConsentPage<'a> {
    client_name: &'a str,
    username: &'a str,
    scopes: Vec<(&'static str, &'static str)>,
    redirect_host: &'a str,
    request: &'a str,
    csrf_token: &'a str,
}

/// GET /consent?<the authorization request>.
pub async fn consent_page(
    State(state): State<AppState>,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> PageResult {
    let query = query.unwrap_or_default();
    let request = AuthorizationRequest::parse(&state.oauth(), &query).await?;
    // Consent is only asked of a sign-in that may answer the request (`prompt=login`,
    // `max_age`), also when the browser comes here directly.
    let (user, _) = satisfying_sign_in(&state, &jar, &request, &query).await?;
    let (jar, csrf_token) = session::csrf_token(&state, jar);
    let scopes = request
        .scope
        .iter()
        .map(|s| (s.as_str(), describe_scope(s)))
        .collect();
    let template = ConsentPage {
        client_name: &request.client.name,
        username: user.username.as_str(),
        scopes,
        redirect_host: request
            .redirect_url
            .host_str()
            .unwrap_or(request.redirect_url.scheme()),
        request: &query,
        csrf_token: &csrf_token,
    };
    Ok((jar, page(StatusCode::OK, &template)).into_response())
}

/// The signed-in user (and sign-in time) if their sign-in may answer `request`; else
/// the way to sign in and come back.
async fn satisfying_sign_in(
    state: &AppState,
    jar: &CookieJar,
    request: &AuthorizationRequest,
    query: &str,
) -> Result<(User, SignIn), WebError> {
    let now = state.clock.unix();
    match session::current_user(state, jar).await? {
        Some((user, sign_in)) if request.sign_in_satisfies(sign_in.auth_time, now) => {
            Ok((user, sign_in))
        }
        _ => Err(WebError::reply(see_other(&login_location(request, query)))),
    }
}

/// The consent form.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct ConsentForm {
    request: String,
    decision: String,
    csrf_token: String,
}

/// POST /consent.
pub async fn consent_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(form): Form<ConsentForm>,
) -> PageResult {
    if !session::csrf_valid(&state, &jar, &form.csrf_token) {
        return Err(WebError::Page(
            StatusCode::FORBIDDEN,
            "This form has expired. Go back to the application and try again.",
        ));
    }
    let request = AuthorizationRequest::parse(&state.oauth(), &form.request).await?;
    let (user, sign_in) = satisfying_sign_in(&state, &jar, &request, &form.request).await?;
    let deny = |code, text: &str| Ok(answer(&request.error(&state.issuer, code, text)));
    if !request.client.admits(&user.username) {
        return deny(
            AuthorizeErrorCode::AccessDenied,
            "this user is not approved for this application",
        );
    }
    match form.decision.as_str() {
        "approve" => {}
        "deny" => {
            state
                .audit
                .record(
                    Event::new("consent")
                        .failed()
                        .user(&user.id)
                        .client(request.client.client_id.as_str())
                        .detail("scope", request.scope.to_string())
                        .detail("decision", "deny"),
                )
                .await;
            return deny(
                AuthorizeErrorCode::AccessDenied,
                "the user denied the request",
            );
        }
        _ => return Err(WebError::bad_request("Choose Allow or Deny.")),
    }
    let issued = async {
        authorize::record_consent(&state.oauth(), &request, &user.id).await?;
        authorize::issue_code(&state.oauth(), &request, &user.id, &sign_in).await
    }
    .await;
    match issued {
        Ok(None) => Ok(see_other(&login_location(&request, &form.request))),
        Ok(Some(response)) => {
            state
                .audit
                .record(
                    Event::new("consent")
                        .user(&user.id)
                        .client(request.client.client_id.as_str())
                        .detail("scope", request.scope.to_string())
                        .detail("decision", "approve"),
                )
                .await;
            Ok(answer(&response))
        }
        Err(e) => {
            tracing::error!(error = %e, "issuing a code failed");
            deny(
                AuthorizeErrorCode::ServerError,
                "the server failed; try again",
            )
        }
    }
}
