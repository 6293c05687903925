//! CORS: a browser app may call the token, userinfo and revocation endpoints and the API
//! from an origin some enabled client registered; discovery and JWKS are public to every
//! origin. Tokens travel in headers, never in cookies, so credentials are not allowed.
//! The token endpoint additionally checks that the origin belongs to the authenticating
//! client ([`crate::oauth::token`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::http::{HeaderName, HeaderValue, Method, request::Parts};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::store::{self, Store, StoreError};

/// Registered origins, refreshed from the database every sync interval.
#[derive(Clone, Default)]
pub struct Origins(Arc<ArcSwap<HashSet<String>>>);

impl Origins {
    /// Reloads the set.
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let all: HashSet<String> = store::clients::cors_origins(store)
            .await?
            .into_iter()
            .collect();
        self.0.store(Arc::new(all));
        Ok(())
    }

    /// Whether some client registered `origin`.
    pub fn contains(&self, origin: &str) -> bool {
        self.0.load().contains(origin)
    }
}

/// Paths a registered origin may call.
fn for_registered(path: &str) -> bool {
    matches!(
        path,
        "/oauth2/token" | "/oauth2/par" | "/oauth2/userinfo" | "/oauth2/revoke"
    ) || path.starts_with("/api/")
}

/// Paths every origin may read.
fn public(path: &str) -> bool {
    matches!(
        path,
        "/oauth2/jwks"
            | "/.well-known/openid-configuration"
            | "/.well-known/oauth-authorization-server"
    )
}

/// The CORS layer.
pub fn layer(origins: Origins) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(
            move |origin: &HeaderValue, parts: &Parts| {
                let path = parts.uri.path();
                public(path)
                    || (for_registered(path) && origin.to_str().is_ok_and(|o| origins.contains(o)))
            },
        ))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            axum::http::header::IF_MATCH,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("dpop"),
        ])
        .expose_headers([
            axum::http::header::ETAG,
            axum::http::header::LOCATION,
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::header::RETRY_AFTER,
            HeaderName::from_static("idempotent-replayed"),
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("ratelimit"),
            HeaderName::from_static("ratelimit-policy"),
            HeaderName::from_static("gatehouse-limit-info"),
            HeaderName::from_static("dpop-nonce"),
        ])
        .max_age(Duration::from_secs(600))
}
