//! Black-box tests: the real router over real HTTP on a random port, the real binary, and
//! both database backends.

// Test code may fail loudly: a panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod cli;
mod config;
mod health;
mod http;
mod openapi;
mod store;
mod telemetry;
