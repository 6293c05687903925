//! A browser-like client for the authorization-code flow over plain HTTP: a cookie jar,
//! no automatic redirects, and the form fields of each page read from its HTML.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::Digest as _;

use crate::support::TestApp;

pub const PASSWORD: &str = "correct horse battery";

/// [`PASSWORD`] hashed once per test process at argon2id's least cost (8 KiB, one pass).
/// Sign-in verifies it through the server's real verifier, which reads the cost from the
/// hash; only the production cost (19 MiB, two passes, tens of milliseconds a hash in a
/// shared test run) is skipped. Users made through the CLI and the admin API, which their
/// own tests cover, are hashed at the production cost.
fn password_hash() -> String {
    use argon2::password_hash::PasswordHasher as _;
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let least = argon2::Params::new(8, 1, 1, None).unwrap();
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, least)
            .hash_password(PASSWORD.as_bytes())
            .unwrap()
            .to_string()
    })
    .clone()
}

/// A user with [`PASSWORD`].
pub async fn user(app: &TestApp, username: &str) -> gatehouse::model::User {
    let now = app.app_state.clock.unix();
    let user = gatehouse::model::User {
        id: uuid::Uuid::now_v7().to_string(),
        username: gatehouse::model::Username::parse(username).unwrap(),
        email: gatehouse::model::Email::parse(&format!("{username}@example.com")).unwrap(),
        display_name: Some(format!("{username} Example")),
        password_hash: password_hash(),
        enabled: true,
        created_at: now,
        updated_at: now,
    };
    gatehouse::store::users::insert(&app.app_state.store, &user)
        .await
        .unwrap();
    user
}

/// A public PKCE client with `redirect` and every user scope.
pub async fn public_client(app: &TestApp, redirect: &str) -> String {
    app.register(gatehouse::oauth::clients::NewClient {
        name: "Phone App".to_owned(),
        client_type: "public".to_owned(),
        redirect_uris: vec![redirect.to_owned()],
        cors_origins: vec!["https://spa.example".to_owned()],
        ..Default::default()
    })
    .await
    .0
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// `/oauth2/authorize?…` with these parameters.
pub fn authorize_path(params: &[(&str, &str)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("/oauth2/authorize?{query}")
}

/// The value of `<input name="NAME" … value="…">` in `html`, unescaped.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let rest = &html[at..];
    let start = rest.find("value=\"")? + 7;
    let end = rest[start..].find('"')?;
    Some(unescape(&rest[start..start + end]))
}

fn unescape(s: &str) -> String {
    s.replace("&#38;", "&")
        .replace("&amp;", "&")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

/// A browser: cookies kept, redirects not followed.
pub struct Browser<'a> {
    pub app: &'a TestApp,
    pub http: reqwest::Client,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    pub async fn get(&self, path_or_url: &str) -> reqwest::Response {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            self.app.url(path_or_url)
        };
        self.http.get(url).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.app.url(path))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Signs in on the login page `login` (a path with query) and returns the response.
    pub async fn sign_in(&self, login: &str, username: &str, password: &str) -> reqwest::Response {
        let page = self.get(login).await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        let csrf = input_value(&html, "csrf_token").expect("login form has a CSRF token");
        let return_to = input_value(&html, "return_to").unwrap_or_default();
        self.post(
            "/login",
            &[
                ("username", username),
                ("password", password),
                ("csrf_token", &csrf),
                ("return_to", &return_to),
            ],
        )
        .await
    }

    /// Answers the consent page at `consent` with `decision`.
    pub async fn consent(&self, consent: &str, decision: &str) -> reqwest::Response {
        let page = self.get(consent).await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        let csrf = input_value(&html, "csrf_token").unwrap();
        let request = input_value(&html, "request").unwrap();
        self.post(
            "/consent",
            &[
                ("csrf_token", &csrf),
                ("request", &request),
                ("decision", decision),
            ],
        )
        .await
    }

    /// Approves the device authorization `user_code` on /activate as `username`, signing
    /// in when asked.
    pub async fn approve_device(&self, user_code: &str, username: &str) {
        let page = self.get("/activate").await.text().await.unwrap();
        let csrf = input_value(&page, "csrf_token").unwrap();
        let res = self
            .post(
                "/activate",
                &[("user_code", user_code), ("csrf_token", &csrf)],
            )
            .await;
        if res.status().is_redirection() {
            let signed_in = self.sign_in(&location(&res), username, PASSWORD).await;
            assert!(
                signed_in.status().is_redirection(),
                "{}",
                signed_in.status()
            );
        }
        let page = self.get("/activate").await.text().await.unwrap();
        let csrf = input_value(&page, "csrf_token").unwrap();
        let confirm = self
            .post(
                "/activate",
                &[("user_code", user_code), ("csrf_token", &csrf)],
            )
            .await;
        assert_eq!(confirm.status(), 200);
        let csrf = input_value(&confirm.text().await.unwrap(), "csrf_token").unwrap();
        let form = [
            ("user_code", user_code),
            ("csrf_token", csrf.as_str()),
            ("decision", "approve"),
        ];
        let done = self.post("/activate", &form).await;
        assert_eq!(done.status(), 200);
        assert!(done.text().await.unwrap().contains("Device connected"));
    }

    /// Follows the whole flow from `authorize` as `username`, approving consent when asked;
    /// returns the final redirect's URL (to the client).
    pub async fn authorize(&self, authorize: &str, username: &str) -> url::Url {
        let mut response = self.get(authorize).await;
        for _ in 0..6 {
            assert!(
                response.status().is_redirection(),
                "expected a redirect, got {} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
            let location = location(&response);
            if location.starts_with("/login") {
                response = self.sign_in(&location, username, PASSWORD).await;
            } else if location.starts_with("/consent") {
                response = self.consent(&location, "approve").await;
            } else if location.starts_with('/') {
                response = self.get(&location).await;
            } else {
                return url::Url::parse(&location).unwrap();
            }
        }
        panic!("the flow did not end at the client");
    }
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned()
}

/// The query parameter `name` of `url`.
pub fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Redeems `code` as a public client.
pub async fn redeem(
    app: &TestApp,
    client_id: &str,
    code: &str,
    redirect: &str,
    verifier: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", code),
        ("redirect_uri", redirect),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    app.post_form("/oauth2/token", None, &form).await
}

/// Refreshes as a public client.
pub async fn refresh(
    app: &TestApp,
    client_id: &str,
    token: &str,
    scope: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("refresh_token", token),
    ];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    app.post_form("/oauth2/token", None, &form).await
}

pub async fn json(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

/// An access token of `username` for the public `client` (redirect `redirect`) with
/// `scope`, through the whole flow: authorize, sign in, consent, redeem.
pub async fn user_token(
    app: &TestApp,
    client: &str,
    redirect: &str,
    username: &str,
    scope: &str,
) -> String {
    let (verifier, challenge) = pkce();
    let path = authorize_path(&[
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", redirect),
        ("scope", scope),
        ("state", "s"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let code = param(&Browser::new(app).authorize(&path, username).await, "code").unwrap();
    let answer = json(redeem(app, client, &code, redirect, Some(&verifier)).await).await;
    answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {answer}"))
        .to_owned()
}
