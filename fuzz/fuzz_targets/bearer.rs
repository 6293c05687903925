//! Bearer tokens at the resource guard (and userinfo and introspection): the bytes as the
//! Authorization header, and JWT-shaped tokens built from them.
#![no_main]

use axum::body::Body;
use axum::http::{HeaderValue, Request, header};
use gatehouse_fuzz::{encode, form_post, harness, jwt_from};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let jwt = jwt_from(data);
    let mut values = vec![format!("Bearer {jwt}").into_bytes(), data.to_vec()];
    values.push([b"Bearer ".as_slice(), data].concat());
    for value in values {
        let Ok(value) = HeaderValue::from_bytes(&value) else {
            continue;
        };
        for path in ["/api/v1/me", "/oauth2/userinfo", "/api/v1/cases"] {
            let mut request = Request::get(path).body(Body::empty()).unwrap_or_default();
            request
                .headers_mut()
                .insert(header::AUTHORIZATION, value.clone());
            h.check(request);
        }
    }
    let basic = h.basic();
    let form = format!("token={}", encode(&jwt));
    h.check(form_post(
        "/oauth2/introspect",
        Some(basic.as_bytes()),
        form.into_bytes(),
    ));
});
