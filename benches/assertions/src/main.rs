//! See Cargo.toml.

use std::io::Write as _;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("sign") if args.len() == 8 => sign(&args[2..]),
        Some("dpop") if args.len() == 7 => dpop(&args[2..]),
        Some("costs") if args.len() == 4 => costs(&args[2], &args[3]),
        _ => {
            eprintln!("usage: assertions sign ES256|RS256 KEY.pem ISS SUB AUD COUNT\n       assertions dpop KEY.pem HTM HTU ACCESS_TOKEN|- COUNT\n       assertions costs EC_KEY.pem RSA_KEY.pem");
            std::process::exit(2);
        }
    }
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn encoding_key(alg: Algorithm, pem: &[u8]) -> EncodingKey {
    match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
        _ => EncodingKey::from_rsa_pem(pem),
    }
    .expect("a private key in PEM")
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn claims(iss: &str, sub: &str, aud: &str) -> Value {
    let now = now();
    json!({"iss": iss, "sub": sub, "aud": aud, "iat": now, "exp": now + 240,
           "jti": uuid::Uuid::new_v4().to_string()})
}

fn sign(args: &[String]) {
    let alg = match args[0].as_str() {
        "ES256" => Algorithm::ES256,
        "RS256" => Algorithm::RS256,
        other => panic!("unsupported alg {other}"),
    };
    let key = encoding_key(alg, &read(&args[1]));
    let count: usize = args[5].parse().expect("COUNT");
    let header = Header::new(alg);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for _ in 0..count {
        let jwt = jsonwebtoken::encode(&header, &claims(&args[2], &args[3], &args[4]), &key)
            .expect("signs");
        writeln!(out, "{jwt}").expect("stdout");
    }
}

/// A DPoP proof's header (ES256, the public key of `key`) and the claims of one proof.
fn dpop_header(key: &EncodingKey) -> Header {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("dpop+jwt".to_owned());
    header.jwk = Some(jsonwebtoken::jwk::Jwk::from_encoding_key(key, Algorithm::ES256).expect("a public JWK"));
    header
}

fn dpop_claims(htm: &str, htu: &str, token: Option<&str>) -> Value {
    use base64::Engine as _;
    use sha2::Digest as _;
    let mut claims = json!({"htm": htm, "htu": htu, "iat": now(), "jti": uuid::Uuid::new_v4().to_string()});
    if let Some(token) = token {
        let hash = sha2::Sha256::digest(token.as_bytes());
        claims["ath"] = json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash));
    }
    claims
}

fn dpop(args: &[String]) {
    let key = encoding_key(Algorithm::ES256, &read(&args[0]));
    let token = (args[3] != "-").then_some(args[3].as_str());
    let count: usize = args[4].parse().expect("COUNT");
    let header = dpop_header(&key);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for _ in 0..count {
        let jwt = jsonwebtoken::encode(&header, &dpop_claims(&args[1], &args[2], token), &key)
            .expect("signs");
        writeln!(out, "{jwt}").expect("stdout");
    }
}

/// Microseconds per call of `f`, over enough calls to take about a second.
fn per_call(label: &str, mut f: impl FnMut()) {
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed().as_millis() < 1000 {
        f();
        n += 1;
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("{label:<40} {us:>8.1} µs");
}

fn costs(ec_path: &str, rsa_path: &str) {
    let (ec_pem, rsa_pem) = (read(ec_path), read(rsa_path));
    let ec = encoding_key(Algorithm::ES256, &ec_pem);
    let rsa = encoding_key(Algorithm::RS256, &rsa_pem);
    let pub_pem = |path: &str| read(&format!("{}.pub", path.trim_end_matches(".pem")));
    let ec_pub = DecodingKey::from_ec_pem(&pub_pem(ec_path)).expect("EC public key");
    let rsa_pub = DecodingKey::from_rsa_pem(&pub_pem(rsa_path)).expect("RSA public key");
    let body = claims("bench-client", "bench", "http://127.0.0.1/oauth2/token");
    let es = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &body, &ec).expect("signs");
    let rs = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &body, &rsa).expect("signs");
    let validation = |alg| {
        let mut v = Validation::new(alg);
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        v
    };
    let (v_es, v_rs) = (validation(Algorithm::ES256), validation(Algorithm::RS256));
    per_call("verify an ES256 assertion", || {
        jsonwebtoken::decode::<Value>(&es, &ec_pub, &v_es).expect("verifies");
    });
    per_call("verify an RS256 assertion (2048-bit)", || {
        jsonwebtoken::decode::<Value>(&rs, &rsa_pub, &v_rs).expect("verifies");
    });
    let access = json!({"iss": "http://127.0.0.1", "sub": "u", "aud": "api", "exp": now() + 600,
        "iat": now(), "jti": "x", "client_id": "c", "scope": "api"});
    per_call("sign the ES256 access token", || {
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &access, &ec).expect("signs");
    });
    // A DPoP proof: the key comes with it, so every request parses it and verifies.
    let proof = jsonwebtoken::encode(
        &dpop_header(&ec),
        &dpop_claims("GET", "http://127.0.0.1/api/v1/me", Some("token")),
        &ec,
    )
    .expect("signs");
    per_call("verify a DPoP proof (key from its jwk)", || {
        let header = jsonwebtoken::decode_header(&proof).expect("a header");
        let jwk = header.jwk.expect("a jwk");
        let key = DecodingKey::from_jwk(&jwk).expect("a key");
        jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256).expect("a thumbprint");
        jsonwebtoken::decode::<Value>(&proof, &key, &v_es).expect("verifies");
    });
}
