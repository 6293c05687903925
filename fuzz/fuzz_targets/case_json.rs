//! The case JSON of the composite create, its update and the line-item append.
#![no_main]

use axum::body::Body;
use axum::http::{Request, header};
use gatehouse_fuzz::harness;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let request = |method: &str, path: &str| {
        Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {}", h.token))
            .header("idempotency-key", format!("k-{}", data.len()))
            .body(Body::from(data.to_vec()))
            .unwrap_or_default()
    };
    h.check(request("POST", "/api/v1/cases"));
    h.check(request(
        "PATCH",
        "/api/v1/cases/00000000-0000-7000-8000-000000000000",
    ));
    h.check(request(
        "POST",
        "/api/v1/cases/00000000-0000-7000-8000-000000000000/line-items",
    ));
});
