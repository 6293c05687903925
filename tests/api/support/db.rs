//! Fresh databases: a SQLite file in a temporary directory, or a PostgreSQL schema of its own; direct SQL for operator mishaps.

use std::net::SocketAddr;
use std::path::Path;

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
                let url = format!("sqlite://{}", dir.path().join("gatehouse.db").display());
                Self {
                    url,
                    backend,
                    dir,
                    master_key,
                    schema: None,
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
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
    }
}
