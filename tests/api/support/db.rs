//! Fresh databases: a SQLite file in a temporary directory, or a PostgreSQL schema of its own; direct SQL for operator mishaps.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use sqlx::Connection as _;

use super::*;

pub(super) fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A fresh, empty database: a SQLite file in a temporary directory, or a PostgreSQL schema
/// of its own in the test database.
pub struct TestDb {
    /// The URL the server and CLI use.
    pub url: String,
    /// Which backend.
    pub backend: Backend,
    /// Working directory for child processes (and the SQLite file).
    pub dir: tempfile::TempDir,
    /// The master key the server and the CLI share for this database.
    pub master_key: String,
    schema: Option<String>,
    /// One connection for [`query_count`], opened on first use.
    counter: tokio::sync::OnceCell<Counter>,
}

/// The connection [`query_count`] reuses.
enum Counter {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let master_key = {
            use base64::Engine as _;
            let mut bytes = [0u8; 32];
            gatehouse::oauth::secret::fill_random(&mut bytes);
            base64::engine::general_purpose::STANDARD.encode(bytes)
        };
        match backend {
            Backend::Sqlite => {
                let file = dir.path().join("gatehouse.db");
                std::fs::copy(sqlite_template().await, &file).unwrap();
                let url = format!("sqlite://{}", file.display());
                Self {
                    url,
                    backend,
                    dir,
                    master_key,
                    schema: None,
                    counter: Default::default(),
                }
            }
            Backend::Postgres => {
                let base = std::env::var("GATEHOUSE_TEST_POSTGRES_URL").unwrap();
                let schema = unique("t");
                let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                let url = with_search_path(&base, &schema);
                Self {
                    url,
                    backend,
                    dir,
                    master_key,
                    schema: Some(schema),
                    counter: Default::default(),
                }
            }
        }
    }

    /// The same database (and master key) for a second server; dropping it drops nothing.
    pub fn share(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            backend: self.backend,
            dir: tempfile::tempdir().unwrap(),
            master_key: self.master_key.clone(),
            schema: None,
            counter: Default::default(),
        }
    }

    /// Working directory for child processes.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The same database reached through `proxy` (PostgreSQL only).
    pub fn url_via(&self, proxy: &Proxy) -> String {
        let mut url = url::Url::parse(&self.url).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(proxy.addr.port())).unwrap();
        url.to_string()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(schema) = self.schema.take() {
            // Best effort, on its own thread: Drop cannot await and the runtime may be gone.
            let base = std::env::var("GATEHOUSE_TEST_POSTGRES_URL").unwrap_or_default();
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                        let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                            .execute(&mut conn)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// A SQLite database with every migration applied, made once and copied for each test
/// instead of migrating each time. It is kept in `CARGO_TARGET_TMPDIR` under a hash of
/// `migrations/sqlite`, so test processes share it and a changed migration makes a new one.
async fn sqlite_template() -> &'static Path {
    static TEMPLATE: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    TEMPLATE
        .get_or_init(|| async {
            use sha2::Digest as _;
            let mut files: Vec<PathBuf> = std::fs::read_dir(manifest_path("migrations/sqlite"))
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .collect();
            files.sort();
            let mut digest = sha2::Sha256::new();
            for file in &files {
                digest.update(file.file_name().unwrap().as_encoded_bytes());
                digest.update(std::fs::read(file).unwrap());
            }
            let digest = digest.finalize();
            let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
            let template = tmp.join(format!("sqlite-template-{name}.db"));
            if !template.exists() {
                let scratch = tempfile::tempdir_in(tmp).unwrap();
                let url = format!("sqlite://{}", scratch.path().join("scratch.db").display());
                let store = gatehouse::store::Store::connect(&url, 1).await.unwrap();
                store.migrate().await.unwrap();
                store.close().await;
                // A whole copy without a WAL, renamed into place: a process that races
                // this one sees either no template or a complete one.
                let whole = scratch.path().join("template.db");
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query("VACUUM INTO ?")
                    .bind(whole.to_str().unwrap())
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                std::fs::rename(&whole, &template).unwrap();
            }
            template
        })
        .await
}

pub(super) fn with_search_path(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// The PostgreSQL server's address, from the test URL.
pub fn postgres_addr() -> SocketAddr {
    let url = url::Url::parse(&std::env::var("GATEHOUSE_TEST_POSTGRES_URL").unwrap()).unwrap();
    let host = url.host_str().unwrap_or("127.0.0.1");
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{}", url.port().unwrap_or(5432))
        .parse()
        .unwrap()
}

/// Runs one SQL statement directly on a test database (to play operator mishaps).
pub async fn execute_sql(db: &TestDb, sql: &'static str) {
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
    }
}

/// The single number one SQL query answers (row counts), read directly from a test database.
#[allow(dead_code)]
pub async fn query_count(db: &TestDb, sql: &'static str) -> i64 {
    let counter = db
        .counter
        .get_or_init(|| async {
            match db.backend {
                Backend::Sqlite => Counter::Sqlite(
                    sqlx::sqlite::SqlitePoolOptions::new()
                        .max_connections(1)
                        .connect(&db.url)
                        .await
                        .unwrap(),
                ),
                Backend::Postgres => Counter::Postgres(
                    sqlx::postgres::PgPoolOptions::new()
                        .max_connections(1)
                        .connect(&db.url)
                        .await
                        .unwrap(),
                ),
            }
        })
        .await;
    match counter {
        Counter::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        Counter::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
    }
}
