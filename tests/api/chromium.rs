//! A real headless Chromium, driven over WebDriver. The browser is Debian's
//! `chromium-headless-shell` (Chromium's lean headless build, which `.ci/run` installs), or
//! Debian's `chromium` in `--headless=new` mode when only that is installed. The test starts
//! the browser itself and has `chromium-driver` attach to it over the DevTools port: the
//! driver cannot start the headless shell (it waits for a page the shell does not open).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// The browsers, best first, each with the switches it needs beyond the common ones.
const BROWSERS: [(&str, &[&str]); 2] = [
    ("/usr/lib/chromium/chromium-headless-shell", &[]),
    ("/usr/bin/chromium", &["--headless=new"]),
];
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// What ChromeDriver would pass to a browser it started, and what keeps a test quiet and quick.
const SWITCHES: &[&str] = &[
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-service-autorun",
    "--enable-automation",
    "--disable-background-networking",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-hang-monitor",
    "--disable-popup-blocking",
    "--disable-sync",
    "--password-store=basic",
    "--use-mock-keychain",
    "--window-size=1280,900",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
];

/// A browser session; the browser and driver processes die with it.
pub struct Chromium {
    pub client: Client,
    _driver: tokio::process::Child,
    _browser: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Chromium {
    /// Starts Chromium, or `None` (saying why) when it is not installed — a failure in CI.
    pub async fn start(test: &str) -> Option<Self> {
        let browser = BROWSERS.iter().find(|(path, _)| Path::new(path).exists());
        let (Some((binary, switches)), true) = (browser, Path::new(CHROMEDRIVER).exists()) else {
            crate::support::skip(
                test,
                "install chromium-headless-shell (or chromium) and chromium-driver to run it",
            );
            return None;
        };
        let profile = tempfile::tempdir().unwrap();
        let mut browser = tokio::process::Command::new(binary)
            .args(SWITCHES.iter().chain(switches.iter()))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let devtools = devtools_port(&mut browser, profile.path()).await;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let caps =
            json!({ "goog:chromeOptions": { "debuggerAddress": format!("127.0.0.1:{devtools}") } });
        let caps: serde_json::Map<String, serde_json::Value> = caps.as_object().unwrap().clone();
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            match ClientBuilder::rustls()
                .unwrap()
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Some(Self {
                        client,
                        _driver: driver,
                        _browser: browser,
                        _profile: profile,
                    });
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("chromedriver did not start: {last:?}");
    }

    /// Waits for an element.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Waits until the text of `css` is `expected`.
    pub async fn wait_for_text(&self, css: &str, expected: &str) {
        let mut last = String::new();
        for _ in 0..150 {
            if let Ok(e) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = e.text().await
            {
                if text.trim() == expected {
                    return;
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} never read {expected:?}; last {last:?}");
    }

    /// Waits until the current URL satisfies `f`.
    pub async fn wait_for_url(&self, what: &str, f: impl Fn(&url::Url) -> bool) -> url::Url {
        for _ in 0..150 {
            if let Ok(url) = self.client.current_url().await
                && f(&url)
            {
                return url;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let now = self.client.current_url().await.ok();
        panic!("the browser never reached {what}; it is at {now:?}");
    }

    /// Fills the sign-in form with `username` and `password` and submits it.
    pub async fn sign_in(&self, username: &str, password: &str) {
        for (field, value) in [("username", username), ("password", password)] {
            self.find(&format!("input[name={field}]"))
                .await
                .send_keys(value)
                .await
                .unwrap();
        }
        self.click("button[type=submit]").await;
    }

    /// Waits for the element `css` and clicks it.
    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// The DevTools port the browser chose: the first of the two lines it writes into its profile
/// once it listens (read once the second has begun, so a half-written port is never taken).
async fn devtools_port(browser: &mut tokio::process::Child, profile: &Path) -> u16 {
    let file = profile.join("DevToolsActivePort");
    // Generous: three browsers may start at once beside the rest of the suite on two cores.
    for _ in 0..600 {
        if let Ok(text) = tokio::fs::read_to_string(&file).await
            && let Some(Ok(port)) = text.split_once('\n').map(|(port, _)| port.parse())
        {
            return port;
        }
        if let Ok(Some(status)) = browser.try_wait() {
            panic!("the browser exited ({status}) before it listened");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the browser wrote no {}", file.display());
}
