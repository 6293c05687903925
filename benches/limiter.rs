//! The cost of one rate-limit check: counted in memory (governor) against counted in
//! Redis (one script call on loopback), each from a task of a 2-worker tokio runtime as
//! in the server. The difference is what the shared limiter adds to every limited request.
//!   cargo bench --bench limiter            (REDIS_URL, default redis://127.0.0.1:6379)
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse::config::Config;
use gatehouse::ratelimit::{self, Limiter, Policy};

fn limiter(redis: Option<&str>) -> Limiter {
    let config = Config {
        // Counted, not reached within a run (one request per 3.6 ms refills it).
        rate_limit_api: 1_000_000,
        rate_limit_token_per_client: 1_000_000,
        rate_limit_token_per_address: 1_000_000,
        rate_limit_window_secs: 3600,
        redis_url: redis.map(|url| url.to_owned().into()),
        rate_limit_redis_prefix: format!("gatehouse_bench_{}", std::process::id()),
        ..Config::default()
    };
    Limiter::from_config(&config).expect("limiter")
}

fn checks(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("rate limit check");
    let memory = limiter(None);
    group.bench_function("memory", |b| {
        b.to_async(&runtime)
            .iter(|| memory.check(Policy::Api, "client-1"))
    });
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let redis = limiter(Some(&url));
    // Failing open would measure nothing: Redis must be counting.
    let counted = runtime.block_on(async {
        let first = redis.check(Policy::Api, "client-1").await.unwrap();
        let second = redis.check(Policy::Api, "client-1").await.unwrap();
        second.remaining < first.remaining
    });
    assert!(counted, "Redis at {url} does not answer");
    group.bench_function("redis", |b| {
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
    group.finish();
}

criterion_group!(benches, checks);
criterion_main!(benches);
