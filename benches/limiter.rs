//! The cost of one rate-limit check: counted in memory (governor) against counted in
//! Redis (one script call on loopback), each from a task of a 2-worker tokio runtime as
//! in the server, for a request within its limit and for one past it. The difference is
//! what the shared limiter adds to every limited request.
//!   cargo bench --bench limiter            (REDIS_URL, default redis://127.0.0.1:6379)
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse::config::Config;
use gatehouse::ratelimit::{self, Limiter, Policy};

/// A limiter whose limits allow `quota` requests an hour.
fn limiter(redis: Option<&str>, quota: u32) -> Limiter {
    let config = Config {
        rate_limit_api: quota,
        rate_limit_token_per_client: quota,
        rate_limit_token_per_address: quota,
        rate_limit_window_secs: 3600,
        redis_url: redis.map(|url| url.to_owned().into()),
        rate_limit_redis_prefix: format!("gatehouse_bench_{}_{quota}", std::process::id()),
        ..Config::default()
    };
    Limiter::from_config(&config).expect("limiter")
}

/// Counted, never reached within a run: refilled faster than checks in memory come.
const ALLOWED: u32 = u32::MAX;
/// Counted, never reached within a run of Redis checks (one request per 3.6 ms refills
/// it), and slow enough to refill that two checks in a row see it go down.
const ALLOWED_REDIS: u32 = 1_000_000;
/// Spent by the first request.
const REFUSED: u32 = 1;

fn checks(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("rate limit check");
    for (name, quota) in [("memory, allowed", ALLOWED), ("memory, refused", REFUSED)] {
        let memory = limiter(None, quota);
        group.bench_function(name, |b| {
            b.to_async(&runtime)
                .iter(|| memory.check(Policy::Api, "client-1"))
        });
    }
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let redis = limiter(Some(&url), ALLOWED_REDIS);
    // Failing open would measure nothing: Redis must be counting.
    let counted = runtime.block_on(async {
        let first = redis.check(Policy::Api, "client-1").await.unwrap();
        let second = redis.check(Policy::Api, "client-1").await.unwrap();
        second.remaining < first.remaining
    });
    assert!(counted, "Redis at {url} does not answer");
    group.bench_function("redis, allowed", |b| {
        b.to_async(&runtime)
            .iter(|| redis.check(Policy::Api, "client-1"))
    });
    // The token endpoint's two limits: the address deferred, counted with the client.
    group.bench_function("redis, address and client in one call", |b| {
        b.to_async(&runtime).iter(|| {
            ratelimit::reporting(async {
                ratelimit::defer(Policy::TokenAddress, "192.0.2.1".to_owned());
                redis.check(Policy::TokenClient, "client-1").await
            })
        })
    });
    // Past the limit: Redis refuses once, the replica remembers until the refusal ends.
    let spent = limiter(Some(&url), REFUSED);
    let refused = runtime.block_on(async {
        spent.check(Policy::Api, "client-1").await;
        spent
            .check(Policy::Api, "client-1")
            .await
            .unwrap()
            .refused()
    });
    assert!(refused, "the second request is refused");
    group.bench_function("redis, refused (remembered)", |b| {
        b.to_async(&runtime)
            .iter(|| spent.check(Policy::Api, "client-1"))
    });
    group.finish();
}

criterion_group!(benches, checks);
criterion_main!(benches);
