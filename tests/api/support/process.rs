//! The binary as a child process: CLI commands and `gatehouse serve`.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncBufReadExt as _;
use tokio::sync::Mutex;

use super::*;

/// The `gatehouse` binary, run in the test database's directory with its URL.
pub fn gatehouse(db: &TestDb) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.current_dir(db.path())
        .env("GATEHOUSE_DATABASE_URL", &db.url)
        .env("GATEHOUSE_MASTER_KEY", &db.master_key)
        .env("GATEHOUSE_LOG", "warn")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// What a finished command printed.
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "command failed: {}\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs the CLI with `args`, feeding `stdin` when given.
pub async fn cli(db: &TestDb, args: &[&str], stdin: Option<&str>) -> Output {
    run(gatehouse(db).args(args), stdin).await
}

pub async fn run(cmd: &mut tokio::process::Command, stdin: Option<&str>) -> Output {
    use tokio::io::AsyncWriteExt as _;
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the command did not finish within 60 s")
        .unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `gatehouse serve` as a child process, logging JSON, on a port the OS picked.
pub struct ServerProcess {
    pub child: tokio::process::Child,
    pub addr: SocketAddr,
    /// The management listener (metrics, health).
    pub management: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    pub async fn start(db: &TestDb, env: &[(&str, &str)]) -> Self {
        let mut cmd = gatehouse(db);
        cmd.arg("serve")
            .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
            .env("GATEHOUSE_MANAGEMENT_LISTEN", "127.0.0.1:0")
            .env("GATEHOUSE_LOG_FORMAT", "json")
            .env("GATEHOUSE_LOG", "info")
            .env("GATEHOUSE_DEMO", "false");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (mtx, mrx) = tokio::sync::oneshot::channel();
        let sink = log.clone();
        tokio::spawn(async move {
            let (mut tx, mut mtx) = (Some(tx), Some(mtx));
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = logged_address(&line, "listening")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr);
                }
                if let Some(addr) = logged_address(&line, "management listening (metrics, health)")
                    && let Some(mtx) = mtx.take()
                {
                    let _ = mtx.send(addr);
                }
                sink.lock().await.push(line);
            }
        });
        let started = async { (rx.await, mrx.await) };
        let (addr, management) = match tokio::time::timeout(Duration::from_secs(30), started).await
        {
            Ok((Ok(addr), Ok(management))) => (addr, management),
            _ => panic!("the server did not start: {:?}", log.lock().await),
        };
        Self {
            child,
            addr,
            management,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The value of the counter `name` (without labels) on the management listener.
    pub async fn counter(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("http://{}/metrics", self.management))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().unwrap();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub async fn wait(&mut self) -> i32 {
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the server did not exit within 30 s")
            .unwrap()
            .code()
            .unwrap_or(-1)
    }
}

pub(super) fn logged_address(line: &str, message: &str) -> Option<SocketAddr> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v["fields"]["message"] != message {
        return None;
    }
    v["fields"]["address"].as_str()?.parse().ok()
}

/// A confidential client_credentials client with `scope`, created with the CLI (for a
/// server the test starts as a process): its id and secret.
pub async fn cli_service_client(db: &TestDb, scope: &str) -> (String, String) {
    let created = cli(
        db,
        &[
            "client",
            "create",
            "--name",
            "svc",
            "--type",
            "confidential",
            "--grant",
            "client_credentials",
            "--scope",
            scope,
            "--json",
        ],
        None,
    )
    .await
    .ok()
    .json();
    let field = |name: &str| created[name].as_str().unwrap().to_owned();
    (field("client_id"), field("client_secret"))
}
