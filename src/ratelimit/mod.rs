//! Request-rate limits: a quota of requests per window for each (policy, key), enforced
//! with GCRA (a smoothed token bucket: a burst of the whole quota, then one request per
//! `window / quota`). In one process the state lives in memory (governor); with
//! `redis_url` set it lives in Redis, one atomic script per check, so that every replica
//! counts against the same limit.
//!
//! A check records its [`Decision`] in the current request's report (a task-local set by
//! the HTTP layer), which turns every decision of the request into the IETF `RateLimit`
//! and `RateLimit-Policy` headers, and a refusal into `Retry-After`.
//!
//! Latency: a request pays at most one Redis round trip. An endpoint that counts a
//! per-address limit and, once the client is known, a per-client one [`defer`]s the first
//! so that the second check sends both in one script call (or, when the request ends
//! before that, the HTTP layer checks the deferred one alone). A refusal Redis gave is
//! remembered until the moment it names, so refused keys are answered without a round
//! trip; GCRA state only moves forward, so that answer is the one Redis would give.

mod in_redis;
mod limiter;
mod report;

pub use limiter::*;
pub use report::*;

use serde::Deserialize;

use crate::config::Config;

/// What a limit is counted per, and on which endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Token requests of one authenticated client.
    TokenClient,
    /// Token requests from one address.
    TokenAddress,
    /// Device authorization requests of one client.
    DeviceClient,
    /// Device authorization requests from one address.
    DeviceAddress,
    /// Requests to /login from one address.
    LoginAddress,
    /// Requests to /activate from one address.
    ActivateAddress,
    /// Resource API requests of one client (or one token, see `rate_limit_api_key`).
    Api,
}

impl Policy {
    /// Every policy.
    pub const ALL: [Policy; 7] = [
        Policy::TokenClient,
        Policy::TokenAddress,
        Policy::DeviceClient,
        Policy::DeviceAddress,
        Policy::LoginAddress,
        Policy::ActivateAddress,
        Policy::Api,
    ];

    /// The policy's name in `RateLimit-Policy` and `RateLimit` headers, metrics and keys.
    pub fn name(self) -> &'static str {
        match self {
            Policy::TokenClient => "token-client",
            Policy::TokenAddress => "token-address",
            Policy::DeviceClient => "device-client",
            Policy::DeviceAddress => "device-address",
            Policy::LoginAddress => "login-address",
            Policy::ActivateAddress => "activate-address",
            Policy::Api => "api",
        }
    }

    /// Requests allowed per window by `config` (0 = no limit).
    fn quota(self, config: &Config) -> u32 {
        match self {
            Policy::TokenClient => config.rate_limit_token_per_client,
            Policy::TokenAddress => config.rate_limit_token_per_address,
            Policy::DeviceClient => config.rate_limit_device_per_client,
            Policy::DeviceAddress => config.rate_limit_device_per_address,
            Policy::LoginAddress => config.rate_limit_login_per_address,
            Policy::ActivateAddress => config.rate_limit_activate_per_address,
            Policy::Api => config.rate_limit_api,
        }
    }
}

/// The key an address is counted under: the address itself, or for IPv6 its /64 (one
/// host or home network is usually given a whole /64, and can pick any address in it).
pub fn address_bucket(address: &str) -> std::borrow::Cow<'_, str> {
    match address.parse::<std::net::Ipv6Addr>() {
        Ok(ip) if ip.to_ipv4_mapped().is_none() => {
            let net = ipnet::Ipv6Net::new(ip, 64).map(|n| n.trunc());
            net.map_or(std::borrow::Cow::Borrowed(address), |n| {
                std::borrow::Cow::Owned(n.to_string())
            })
        }
        _ => std::borrow::Cow::Borrowed(address),
    }
}

/// The key a client's token and device limits count: a confidential client's id; for a
/// public client, whose `client_id` is no secret, the id and the caller's address bucket,
/// so that nobody can spend the app's quota for its other users.
pub fn client_key<'a>(
    client: &'a crate::model::Client,
    address: &str,
) -> std::borrow::Cow<'a, str> {
    match client.client_type {
        crate::model::ClientType::Public => {
            std::borrow::Cow::Owned(format!("{}@{address}", client.client_id))
        }
        crate::model::ClientType::Confidential => {
            std::borrow::Cow::Borrowed(client.client_id.as_str())
        }
    }
}

/// What the resource API's limit is counted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ApiLimitKey {
    /// A user's tokens of one client share one limit (one user cannot spend the app's
    /// limit for its other users); a client-credentials token counts for its client.
    #[default]
    Subject,
    /// Every token of one client shares one limit.
    Client,
    /// Each access token has its own limit.
    Token,
}

/// What to do when Redis cannot answer a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Let the request through (and log and count the failure).
    #[default]
    Open,
    /// Refuse the request with 503 and `Retry-After: 1`.
    Closed,
}

/// The answer to one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Within the limit.
    Allowed,
    /// Over the limit: wait `retry_after_secs`.
    Limited,
    /// The shared limiter did not answer and the server fails closed.
    Unavailable,
}

/// One policy's decision for one request.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    /// The policy.
    pub policy: Policy,
    /// Requests per window.
    pub quota: u32,
    /// The window, in seconds.
    pub window_secs: u64,
    /// Allowed, limited, or not known.
    pub outcome: Outcome,
    /// Requests still allowed right now.
    pub remaining: u32,
    /// Seconds until the whole quota is available again.
    pub reset_secs: u64,
    /// Seconds until the next request would be allowed (0 when allowed).
    pub retry_after_secs: u64,
}

impl Decision {
    /// Whether the request must be refused.
    pub fn refused(&self) -> bool {
        self.outcome != Outcome::Allowed
    }

    /// Why a refused request was refused, for the caller's developer.
    pub fn describe(&self) -> String {
        match self.outcome {
            Outcome::Unavailable => "the rate limiter is unavailable; retry shortly".to_owned(),
            _ => format!(
                "rate limit {} exceeded ({} requests per {} s); retry after {} s",
                self.policy.name(),
                self.quota,
                self.window_secs,
                self.retry_after_secs
            ),
        }
    }
}
