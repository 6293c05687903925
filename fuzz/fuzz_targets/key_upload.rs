//! Key uploads of the admin API: PEM public keys and X.509 certificates (as text and
//! wrapped in PEM armour), and JWKS documents.
#![no_main]

use axum::body::Body;
use axum::http::{Request, header};
use gatehouse_fuzz::harness;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let text = String::from_utf8_lossy(data);
    let post = |path: String, body: Vec<u8>| {
        Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {}", h.token))
            .body(Body::from(body))
            .unwrap_or_default()
    };
    let keys = format!("/admin/v1/clients/{}/keys", h.partner);
    let jwks = format!("/admin/v1/clients/{}/jwks", h.partner);
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    for pem in [
        text.to_string(),
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n"),
        format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n"),
    ] {
        let body = serde_json::json!({ "pem": pem }).to_string();
        h.check(post(keys.clone(), body.into_bytes()));
    }
    h.check(post(jwks, data.to_vec()));
});
