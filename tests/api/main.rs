//! Black-box tests: the real router over real HTTP on a random port, the real binary, and
//! both database backends.

// Test code may fail loudly: a panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod admin;
mod api_conformance;
mod assertions;
mod audit;
mod browser;
mod cases;
mod cases_props;
mod chromium;
mod cli;
mod config;
mod deploy;
mod device;
mod dpop;
mod events;
mod events_relay;
mod flow;
mod grants;
mod guard;
mod health;
mod http;
mod interop;
mod jwt_bearer;
mod keys;
mod lockout;
mod mail;
mod oauth;
mod oidc;
mod openapi;
mod par;
mod ratelimit;
mod scaleout;
mod security;
mod store;
mod telemetry;
mod usage;
mod web;
