//! DPoP (RFC 9449): sender-constrained access tokens. Proofs are made here with aws-lc's
//! ECDSA directly (not the server's JOSE library), so that every rule can be broken on its
//! own; `tests/api/interop.rs` drives the same flows with oauth4webapi.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rstest::rstest;
use rstest_reuse::apply;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::support::{Backend, TestApp, both_backends, unavailable};

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    use gatehouse::clock::Clock as _;
    gatehouse::clock::SystemClock.unix()
}

/// A client's DPoP key (ES256) and the proofs it signs.
pub struct Key {
    pair: EcdsaKeyPair,
    /// The public JWK.
    pub jwk: Value,
}

impl Key {
    pub fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref().to_vec(); // 0x04 || x || y
        let jwk =
            json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])});
        Self { pair, jwk }
    }

    /// The RFC 7638 thumbprint: SHA-256 of the required members in lexicographic order.
    pub fn jkt(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#,
            self.jwk["x"], self.jwk["y"]
        );
        b64(Sha256::digest(canonical.as_bytes()))
    }

    /// A JWS of `header` and `claims` signed with this key, whatever they say.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    }

    /// The standard header of this key's proofs.
    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk})
    }

    /// A valid proof for `htm` `htu` (plus `ath` of `token`), with `extra` claims merged
    /// over the standard ones (a `null` removes one).
    pub fn proof(&self, htm: &str, htu: &str, token: Option<&str>, extra: &Value) -> String {
        let mut claims = json!({"jti": uuid_like(), "htm": htm, "htu": htu, "iat": now()});
        if let Some(token) = token {
            claims["ath"] = json!(b64(Sha256::digest(token.as_bytes())));
        }
        merge(&mut claims, extra);
        self.sign(&self.header(), &claims)
    }
}

fn merge(into: &mut Value, extra: &Value) {
    if let (Some(into), Some(extra)) = (into.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            if v.is_null() {
                into.remove(k);
            } else {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

fn uuid_like() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    b64(bytes)
}

/// A DPoP token request for the client credentials of `id`/`secret`.
pub async fn dpop_token(
    app: &TestApp,
    id: &str,
    secret: &str,
    proof: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")]);
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    request.send().await.unwrap()
}

/// GET `path` with `Authorization: <scheme> <token>` and, if given, a `DPoP` proof.
pub async fn get_with(
    app: &TestApp,
    path: &str,
    scheme: &str,
    token: &str,
    proof: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .http
        .get(app.url(path))
        .header("Authorization", format!("{scheme} {token}"));
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    request.send().await.unwrap()
}

/// The DPoP error of a refused resource request: its status, `WWW-Authenticate: DPoP`
/// challenge error, and the problem's detail.
async fn dpop_error(res: reqwest::Response) -> (u16, String, String) {
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("DPoP "))
        .unwrap_or_default();
    let error = challenge
        .split("error=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned();
    let body: Value = res.json().await.unwrap_or_default();
    (
        status,
        error,
        body["detail"].as_str().unwrap_or_default().to_owned(),
    )
}

fn payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A DPoP-bound client-credentials token of a new service client, with its key.
async fn bound_token(app: &TestApp) -> (String, String, String, Key) {
    let (id, secret) = app.service_client(&["api"]).await;
    let key = Key::new();
    let proof = key.proof("POST", &app.url("/oauth2/token"), None, &json!({}));
    let res = dpop_token(app, &id, &secret, Some(&proof)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap().to_owned();
    (id, secret, token, key)
}

#[apply(both_backends)]
async fn a_dpop_bound_token_works_only_with_proofs_of_its_key(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (id, secret, token, key) = bound_token(&app).await;
    assert_eq!(
        payload(&token)["cnf"]["jkt"],
        key.jkt(),
        "cnf.jkt is the key's thumbprint"
    );

    let me = app.url("/api/v1/me");
    let proof = key.proof("GET", &me, Some(&token), &json!({}));
    let ok = get_with(&app, "/api/v1/me", "DPoP", &token, Some(&proof)).await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["client_id"], id);

    let replayed = get_with(&app, "/api/v1/me", "DPoP", &token, Some(&proof)).await;
    let (status, error, detail) = dpop_error(replayed).await;
    assert_eq!((status, error.as_str()), (401, "invalid_dpop_proof"));
    assert!(detail.contains("used before"), "{detail}");

    let as_bearer = get_with(&app, "/api/v1/me", "Bearer", &token, None).await;
    let (status, error, _) = dpop_error(as_bearer).await;
    assert_eq!(
        (status, error.as_str()),
        (401, "invalid_token"),
        "a stolen DPoP token is no bearer token"
    );

    let thief = Key::new();
    let stolen = thief.proof("GET", &me, Some(&token), &json!({}));
    let (status, error, detail) =
        dpop_error(get_with(&app, "/api/v1/me", "DPoP", &token, Some(&stolen)).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_dpop_proof"));
    assert!(detail.contains("another key"), "{detail}");

    let without = get_with(&app, "/api/v1/me", "DPoP", &token, None).await;
    assert_eq!(dpop_error(without).await.1, "invalid_dpop_proof");

    // A bearer token is not accepted under the DPoP scheme.
    let bearer = app.access_token(&id, &secret, None).await;
    let proof = key.proof("GET", &me, Some(&bearer), &json!({}));
    let (_, error, _) =
        dpop_error(get_with(&app, "/api/v1/me", "DPoP", &bearer, Some(&proof)).await).await;
    assert_eq!(error, "invalid_token");

    // Introspection tells a resource server the binding (RFC 9449 §6.2).
    let answer = app.introspect(&id, &secret, &token).await;
    assert_eq!(answer["token_type"], "DPoP");
    assert_eq!(answer["cnf"]["jkt"], key.jkt());
}

#[apply(both_backends)]
async fn every_proof_rule_is_enforced_on_its_own(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (_, _, token, key) = bound_token(&app).await;
    let me = app.url("/api/v1/me");
    let t = Some(token.as_str());
    let mut cases: Vec<(&str, String)> = vec![
        ("htm must be GET", key.proof("POST", &me, t, &json!({}))),
        (
            "htu must be",
            key.proof("GET", &app.url("/api/v1/cases"), t, &json!({})),
        ),
        (
            "ath is not the hash",
            key.proof("GET", &me, Some("another token"), &json!({})),
        ),
        ("no ath", key.proof("GET", &me, None, &json!({}))),
        (
            "too old",
            key.proof("GET", &me, t, &json!({"iat": now() - 600})),
        ),
        (
            "in the future",
            key.proof("GET", &me, t, &json!({"iat": now() + 600})),
        ),
        ("no jti", key.proof("GET", &me, t, &json!({"jti": null}))),
        ("no iat", key.proof("GET", &me, t, &json!({"iat": null}))),
    ];
    let claims = json!({"jti": uuid_like(), "htm": "GET", "htu": me, "iat": now(),
        "ath": b64(Sha256::digest(token.as_bytes()))});
    let mut typ = key.header();
    typ["typ"] = json!("JWT");
    cases.push(("typ must be dpop+jwt", key.sign(&typ, &claims)));
    let mut private = key.header();
    private["jwk"]["d"] = json!(b64([7u8; 32]));
    cases.push(("holds a private key", key.sign(&private, &claims)));
    let mut rs256 = key.header();
    rs256["alg"] = json!("RS256");
    cases.push(("alg `RS256` is not accepted", key.sign(&rs256, &claims)));
    let none = format!(
        "{}.{}.",
        b64(json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk}).to_string()),
        b64(claims.to_string())
    );
    cases.push(("alg `none` is not accepted", none));
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            typ: Some("dpop+jwt".to_owned()),
            ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
        },
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"a shared secret"),
    )
    .unwrap();
    cases.push(("alg `HS256` is not accepted", hs256));
    let other = Key::new();
    let mut forged = key.header();
    forged["jwk"] = other.jwk.clone();
    cases.push(("signature does not verify", key.sign(&forged, &claims)));
    for (rule, proof) in cases {
        let res = get_with(&app, "/api/v1/me", "DPoP", &token, Some(&proof)).await;
        let (status, error, detail) = dpop_error(res).await;
        assert_eq!(
            (status, error.as_str()),
            (401, "invalid_dpop_proof"),
            "{rule}: {detail}"
        );
        // Each case breaks one rule, and the answer names that rule.
        assert!(detail.contains(rule), "expected `{rule}` in: {detail}");
    }
    // The token still works with a good proof: no rule above spent anything it needs.
    let good = key.proof("GET", &me, t, &json!({}));
    let res = get_with(&app, "/api/v1/me", "DPoP", &token, Some(&good)).await;
    assert_eq!(res.status(), 200);
}

#[apply(both_backends)]
async fn the_token_endpoint_checks_proofs_and_dpop_bound_clients(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let (id, secret) = app.service_client(&["api"]).await;
    let key = Key::new();
    let wrong_htu = key.proof("POST", &app.url("/oauth2/introspect"), None, &json!({}));
    let res = dpop_token(&app, &id, &secret, Some(&wrong_htu)).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof", "{body}");

    let two = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&id, Some(&secret))
        .header(
            "DPoP",
            key.proof("POST", &app.url("/oauth2/token"), None, &json!({})),
        )
        .header(
            "DPoP",
            key.proof("POST", &app.url("/oauth2/token"), None, &json!({})),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(two.status(), 400, "one DPoP header only");

    let (bound, bound_secret) = app
        .register(gatehouse::oauth::clients::NewClient {
            name: "bound".to_owned(),
            client_type: "confidential".to_owned(),
            grant_types: vec!["client_credentials".to_owned()],
            scopes: vec!["api".to_owned()],
            dpop_bound_access_tokens: true,
            ..Default::default()
        })
        .await;
    let bound_secret = bound_secret.unwrap();
    let res = dpop_token(&app, &bound, &bound_secret, None).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
    let proof = key.proof("POST", &app.url("/oauth2/token"), None, &json!({}));
    let res = dpop_token(&app, &bound, &bound_secret, Some(&proof)).await;
    assert_eq!(res.status(), 200);

    // A client registered to use nonces is asked for one, though the server asks no other.
    let (careful, careful_secret) = app
        .register(gatehouse::oauth::clients::NewClient {
            name: "careful".to_owned(),
            client_type: "confidential".to_owned(),
            grant_types: vec!["client_credentials".to_owned()],
            scopes: vec!["api".to_owned()],
            require_dpop_nonce: true,
            ..Default::default()
        })
        .await;
    let careful_secret = careful_secret.unwrap();
    let proof = key.proof("POST", &app.url("/oauth2/token"), None, &json!({}));
    let asked = dpop_token(&app, &careful, &careful_secret, Some(&proof)).await;
    let nonce = asked.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_eq!(
        asked.json::<Value>().await.unwrap()["error"],
        "use_dpop_nonce"
    );
    let proof = key.proof(
        "POST",
        &app.url("/oauth2/token"),
        None,
        &json!({"nonce": nonce}),
    );
    let res = dpop_token(&app, &careful, &careful_secret, Some(&proof)).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers().contains_key("dpop-nonce"),
        "the next nonce comes with the tokens"
    );

    let discovery: Value = app
        .get("/.well-known/oauth-authorization-server")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        discovery["dpop_signing_alg_values_supported"],
        json!(["ES256", "PS256", "EdDSA", "Ed25519"])
    );
    assert_eq!(
        discovery["pushed_authorization_request_endpoint"],
        app.url("/oauth2/par")
    );
    assert_eq!(discovery["require_pushed_authorization_requests"], false);
}

#[apply(both_backends)]
async fn nonces_and_spent_proofs_hold_across_replicas(#[case] backend: Backend) {
    if unavailable(backend, module_path!()) {
        return;
    }
    let a = TestApp::spawn_with(backend, |c| c.dpop_nonce_required = true).await;
    let issuer = a.url("");
    let b = TestApp::spawn_on(a.db.share(), |c| {
        c.dpop_nonce_required = true;
        c.issuer = Some(issuer);
    })
    .await;
    let (id, secret) = a.service_client(&["api"]).await;
    let key = Key::new();
    let htu = a.url("/oauth2/token");

    let first = dpop_token(
        &a,
        &id,
        &secret,
        Some(&key.proof("POST", &htu, None, &json!({}))),
    )
    .await;
    assert_eq!(first.status(), 400);
    let nonce = first.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["error"], "use_dpop_nonce");

    let stale = key.proof(
        "POST",
        &htu,
        None,
        &json!({"nonce": "not-a-nonce-of-this-server"}),
    );
    let res = dpop_token(&b, &id, &secret, Some(&stale)).await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "use_dpop_nonce"
    );

    // The nonce replica A handed out is good at replica B.
    let proof = key.proof("POST", &htu, None, &json!({"nonce": nonce}));
    let res = dpop_token(&b, &id, &secret, Some(&proof)).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    // The same proof again, at the other replica: spent.
    let again = dpop_token(&a, &id, &secret, Some(&proof)).await;
    assert_eq!(again.status(), 400);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof", "{body}");

    // At the resource too: a proof without the nonce is answered with one.
    let token = {
        let proof = key.proof("POST", &htu, None, &json!({"nonce": nonce}));
        let res = dpop_token(&a, &id, &secret, Some(&proof)).await;
        res.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let me = a.url("/api/v1/me");
    let bare = key.proof("GET", &me, Some(&token), &json!({}));
    let res = get_with(&b, "/api/v1/me", "DPoP", &token, Some(&bare)).await;
    let fresh = res.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_eq!(dpop_error(res).await.1, "use_dpop_nonce");
    let proof = key.proof("GET", &me, Some(&token), &json!({"nonce": fresh}));
    let res = get_with(&a, "/api/v1/me", "DPoP", &token, Some(&proof)).await;
    assert_eq!(res.status(), 200);
    b.stop().await;
}

/// A token request of a public client with `form`, and a proof when given.
async fn public_token(app: &TestApp, form: &[(&str, &str)], proof: Option<String>) -> Value {
    let mut request = app.http.post(app.url("/oauth2/token")).form(form);
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    request.send().await.unwrap().json().await.unwrap()
}

/// A DPoP-bound refresh token: refused with another key's proof, renewed with its own.
async fn refresh_needs_the_key(app: &TestApp, refresh: &[(&str, &str)], key: &Key) {
    let htu = app.url("/oauth2/token");
    let other = Key::new().proof("POST", &htu, None, &json!({}));
    let stolen = public_token(app, refresh, Some(other)).await;
    assert_eq!(
        stolen["error"], "invalid_dpop_proof",
        "another key: {stolen}"
    );
    let own = key.proof("POST", &htu, None, &json!({}));
    let renewed = public_token(app, refresh, Some(own)).await;
    assert_eq!(renewed["token_type"], "DPoP", "{renewed}");
}

#[apply(both_backends)]
async fn a_code_bound_by_dpop_jkt_and_a_public_clients_refresh_token_need_the_key(
    #[case] backend: Backend,
) {
    use crate::flow::{Browser, authorize_path, param, pkce, public_client, user};
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    let redirect = "https://app.example/cb";
    let client = public_client(&app, redirect).await;
    user(&app, "ada").await;
    let key = Key::new();
    let jkt = key.jkt();
    let (verifier, challenge) = pkce();
    let path = authorize_path(&[
        ("response_type", "code"),
        ("client_id", &client),
        ("redirect_uri", redirect),
        ("scope", "openid offline_access api"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("dpop_jkt", &jkt),
    ]);
    let code = param(&Browser::new(&app).authorize(&path, "ada").await, "code").unwrap();
    let htu = app.url("/oauth2/token");
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", client.as_str()),
        ("code", code.as_str()),
        ("redirect_uri", redirect),
        ("code_verifier", verifier.as_str()),
    ];
    let other = Key::new().proof("POST", &htu, None, &json!({}));
    let refused = public_token(&app, &form, Some(other)).await;
    assert_eq!(
        refused["error"], "invalid_dpop_proof",
        "another key: {refused}"
    );
    // The refusal rolled back: the code is still good for its own key.
    let tokens = public_token(&app, &form, Some(key.proof("POST", &htu, None, &json!({})))).await;
    assert_eq!(tokens["token_type"], "DPoP", "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(payload(access)["cnf"]["jkt"], jkt);
    // Userinfo takes the token by its binding, as the API does.
    let userinfo = app.url("/oauth2/userinfo");
    let proof = key.proof("GET", &userinfo, Some(access), &json!({}));
    let claims = get_with(&app, "/oauth2/userinfo", "DPoP", access, Some(&proof)).await;
    assert_eq!(claims.status(), 200);
    let as_bearer = get_with(&app, "/oauth2/userinfo", "Bearer", access, None).await;
    assert_eq!(as_bearer.status(), 401);
    let refresh_token = tokens["refresh_token"].as_str().unwrap();

    let refresh = [
        ("grant_type", "refresh_token"),
        ("client_id", client.as_str()),
        ("refresh_token", refresh_token),
    ];
    let bare = public_token(&app, &refresh, None).await;
    assert_eq!(bare["error"], "invalid_dpop_proof", "no proof: {bare}");
    refresh_needs_the_key(&app, &refresh, &key).await;

    let bad_jkt = authorize_path(&[
        ("response_type", "code"),
        ("client_id", &client),
        ("redirect_uri", redirect),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("dpop_jkt", "not a thumbprint"),
    ]);
    let answer = app.get(&bad_jkt).await;
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("error=invalid_request"), "{location}");
}

#[apply(both_backends)]
async fn the_device_and_partner_grants_bind_their_tokens_to_the_proofs_key(
    #[case] backend: Backend,
) {
    use crate::flow::{Browser, user};
    use jwt_simple::prelude::ECDSAP256KeyPairLike as _;
    if unavailable(backend, module_path!()) {
        return;
    }
    let app = TestApp::spawn(backend).await;
    user(&app, "ada").await;
    let htu = app.url("/oauth2/token");

    // The device grant: a public TV app's access and refresh tokens are bound to its key.
    let tv = crate::device::tv_app(&app).await;
    let codes = crate::device::start(&app, &tv, "api offline_access").await;
    let user_code = codes["user_code"].as_str().unwrap();
    Browser::new(&app).approve_device(user_code, "ada").await;
    let key = Key::new();
    let form = [
        ("grant_type", crate::device::GRANT),
        ("client_id", tv.as_str()),
        ("device_code", codes["device_code"].as_str().unwrap()),
    ];
    let tokens = public_token(&app, &form, Some(key.proof("POST", &htu, None, &json!({})))).await;
    assert_eq!(tokens["token_type"], "DPoP", "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(payload(access)["cnf"]["jkt"], key.jkt());
    let refresh = [
        ("grant_type", "refresh_token"),
        ("client_id", tv.as_str()),
        ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
    ];
    refresh_needs_the_key(&app, &refresh, &key).await;

    // The JWT bearer grant: a partner's assertion with a proof gets a token bound to the
    // proof's key (not to the assertion's), usable for ada with that key only.
    let partner = crate::jwt_bearer::partner(&app).await;
    let signer = crate::jwt_bearer::es256_key(&app, &partner).await;
    let claims = crate::jwt_bearer::claims(&partner, "ada", &htu, 120, "dpop-partner-1");
    let assertion = signer.sign(claims).unwrap();
    let form = [
        ("grant_type", crate::jwt_bearer::GRANT),
        ("assertion", assertion.as_str()),
    ];
    let partner_key = Key::new();
    let proof = partner_key.proof("POST", &htu, None, &json!({}));
    let tokens = public_token(&app, &form, Some(proof)).await;
    assert_eq!(tokens["token_type"], "DPoP", "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(payload(access)["cnf"]["jkt"], partner_key.jkt());
    let me = app.url("/api/v1/me");
    let proof = partner_key.proof("GET", &me, Some(access), &json!({}));
    let answer = get_with(&app, "/api/v1/me", "DPoP", access, Some(&proof)).await;
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["client_id"], partner);
    let proof = key.proof("GET", &me, Some(access), &json!({}));
    let (status, error, _) =
        dpop_error(get_with(&app, "/api/v1/me", "DPoP", access, Some(&proof)).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_dpop_proof"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_proofs_kept_in_redis_hold_across_replicas_and_a_silent_redis_refuses_proofs() {
    use crate::support::{query_count, redis_prefix, redis_url};
    use gatehouse::oauth::dpop::ReplayStore;
    let Some(redis) = redis_url(module_path!()) else {
        return;
    };
    let prefix = redis_prefix();
    let in_redis = |c: &mut gatehouse::config::Config| {
        c.redis_url = Some(redis.clone().into());
        c.rate_limit_redis_prefix = prefix.clone();
        c.dpop_replay_store = ReplayStore::Redis;
    };
    let a = TestApp::spawn_with(Backend::Sqlite, in_redis).await;
    // Both replicas are one issuer (one URL behind a load balancer), so a proof for one
    // is valid at the other: once.
    let issuer = a.url("");
    let b = TestApp::spawn_on(a.db.share(), |c| {
        in_redis(c);
        c.issuer = Some(issuer.clone());
    })
    .await;
    let (_, _, token, key) = bound_token(&a).await;
    let proof = key.proof("GET", &a.url("/api/v1/me"), Some(&token), &json!({}));
    let ok = get_with(&a, "/api/v1/me", "DPoP", &token, Some(&proof)).await;
    assert_eq!(ok.status(), 200);

    // Kept in Redis until the proof is too old anyway, not in the database.
    let jti = payload(&proof)["jti"].as_str().unwrap().to_owned();
    let spent = format!("{prefix}:dpop:{}:{jti}", key.jkt());
    let mut connection = redis::Client::open(redis.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(&spent)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(
        (1..=60 + 2 * 10).contains(&ttl),
        "{spent} expires in {ttl} s"
    );
    let rows = query_count(&a.db, "SELECT COUNT(*) FROM used_dpop_proofs").await;
    assert_eq!(rows, 0);

    // The other replica refuses it.
    let replayed = get_with(&b, "/api/v1/me", "DPoP", &token, Some(&proof)).await;
    let (status, error, detail) = dpop_error(replayed).await;
    assert_eq!((status, error.as_str()), (401, "invalid_dpop_proof"));
    assert!(detail.contains("used before"), "{detail}");

    // With Redis silent, a proof is refused (503), never accepted unchecked; bearer
    // requests go on (the rate limits fail open by default).
    let silent = TestApp::spawn_on(a.db.share(), |c| {
        in_redis(c);
        c.issuer = Some(issuer.clone());
        c.redis_url = Some("redis://127.0.0.1:1".to_owned().into());
    })
    .await;
    let proof = key.proof("GET", &a.url("/api/v1/me"), Some(&token), &json!({}));
    let refused = get_with(&silent, "/api/v1/me", "DPoP", &token, Some(&proof)).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let (id, secret) = silent.service_client(&["api"]).await;
    let proof = key.proof("POST", &a.url("/oauth2/token"), None, &json!({}));
    let refused = dpop_token(&silent, &id, &secret, Some(&proof)).await;
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(dpop_token(&silent, &id, &secret, None).await.status(), 200);
    for app in [a, b, silent] {
        app.stop().await;
    }
}
