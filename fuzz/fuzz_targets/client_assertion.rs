//! Client assertions (RFC 7523 §2.2) and the JWT bearer grant's assertion (§2.1): JWT-shaped
//! strings built from the fuzz bytes, and the bytes as they are.
#![no_main]

use gatehouse_fuzz::{encode, form_post, harness, jwt_from};
use libfuzzer_sys::fuzz_target;

const TYPE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";
const GRANT: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let raw = String::from_utf8_lossy(data);
    for assertion in [jwt_from(data), raw.into_owned()] {
        let assertion = encode(&assertion);
        let auth = format!(
            "grant_type=client_credentials&client_id={}&client_assertion_type={TYPE}&client_assertion={assertion}",
            h.partner
        );
        h.check(form_post("/oauth2/token", None, auth.into_bytes()));
        let grant = format!("grant_type={GRANT}&assertion={assertion}");
        h.check(form_post("/oauth2/token", None, grant.into_bytes()));
    }
});
