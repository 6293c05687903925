//! The token endpoint's form body and `Authorization: Basic` credentials: the bytes up to
//! the first newline are the Authorization header, the rest is the form.
#![no_main]

use gatehouse_fuzz::{form_post, harness};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let (authorization, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (Some(&data[..at]), &data[at + 1..]),
        None => (None, data),
    };
    h.check(form_post("/oauth2/token", authorization, body.to_vec()));
    h.check(form_post(
        "/oauth2/device_authorization",
        authorization,
        body.to_vec(),
    ));
    h.check(form_post(
        "/oauth2/introspect",
        authorization,
        body.to_vec(),
    ));
    h.check(form_post("/oauth2/revoke", authorization, body.to_vec()));
});
