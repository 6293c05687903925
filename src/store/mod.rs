//! Persistence. One module per aggregate; all SQL of the project lives below this folder.
//!
//! Both backends run the same SQL text wherever the dialects agree (`$1` placeholders,
//! `RETURNING`, `ON CONFLICT`); the [`read!`], [`write!`] and [`in_tx!`] macros expand one
//! body once per backend so that each runs with its own native driver and types.
//! SQLite gets one writer connection and a pool of readers: writes queue in-process
//! instead of failing with `SQLITE_BUSY`, and the busy timeout covers other processes
//! (the CLI) writing to the same file.

pub mod audit;
pub mod batch;
pub mod cases;
pub mod client_keys;
pub mod clients;
pub mod consents;
pub mod cutoffs;
mod delivery;
pub mod devices;
pub mod events;
pub mod grants;
pub mod idempotency;
pub mod keys;
pub mod logouts;
pub mod outbox;
pub mod prune;
pub mod pushed;
pub mod revocations;
pub mod sessions;
pub mod usage;
pub mod users;
pub mod webhooks;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// How long a query waits for a free connection before it fails (and readiness turns 503).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of a SQLite file is memory-mapped (the address space, not resident memory).
const SQLITE_MMAP_BYTES: u64 = 1 << 30;
/// The WAL size (pages) at which SQLite's writer checkpoints by itself, inside a COMMIT.
/// The server checkpoints from a reader connection every [`SQLITE_CHECKPOINT_EVERY`]
/// instead, off the writer's path; this is the backstop should that fall behind (and
/// what a CLI command, which runs no checkpointer, leaves to the server or to close).
const SQLITE_WRITER_CHECKPOINT_PAGES: u32 = 16_384;
/// How often the server checkpoints a SQLite file's WAL ([`Store::checkpoint`]).
pub const SQLITE_CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// How long SQLite waits on a lock held by another process before it gives up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Which database engine a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: one file, one machine.
    Sqlite,
    /// The scale-out backend shared by several replicas.
    Postgres,
}

/// Errors of the persistence layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated; names what is taken.
    #[error("{0}")]
    Conflict(String),
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value no longer parses (a bug or manual tampering).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// An idempotency claim lapsed and another request took its key over: roll back.
    #[error("an idempotency claim lapsed")]
    ClaimLapsed,
}

impl StoreError {
    /// Maps a unique-constraint violation to [`StoreError::Conflict`] saying `what` is taken.
    pub(crate) fn on_unique(e: sqlx::Error, what: &str) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(what.to_owned())
            }
            _ => StoreError::Database(e),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Db {
    Sqlite { read: SqlitePool, write: SqlitePool },
    Postgres(PgPool),
}

/// A handle to the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) db: Db,
}

/// An open transaction on either backend; dropped without [`Tx::commit`] it rolls back.
pub enum Tx {
    /// A SQLite transaction on the writer connection (`BEGIN IMMEDIATE`).
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    /// A PostgreSQL transaction.
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Runs `$body` with `$c` bound to the pool for `$role` (`read` or `write`): on SQLite the
/// reader pool or the single writer; on PostgreSQL the one pool.
macro_rules! on_pool {
    ($store:expr, $role:ident, |$c:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite { $role, .. } => {
                let $c = $role;
                $body
            }
            $crate::store::Db::Postgres(pool) => {
                let $c = pool;
                $body
            }
        }
    };
}

/// Runs `$body` with `$c` bound to a pool that serves reads.
macro_rules! read {
    ($store:expr, |$c:ident| $body:expr) => {
        $crate::store::on_pool!($store, read, |$c| $body)
    };
}

/// Runs `$body` with `$c` bound to a pool that serves writes.
macro_rules! write {
    ($store:expr, |$c:ident| $body:expr) => {
        $crate::store::on_pool!($store, write, |$c| $body)
    };
}

/// Runs `$body` with `$c` bound to the connection of an open [`Tx`].
macro_rules! in_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(tx) => {
                let $c = &mut **tx;
                $body
            }
            $crate::store::Tx::Postgres(tx) => {
                let $c = &mut **tx;
                $body
            }
        }
    };
}

pub(crate) use {in_tx, on_pool, read, write};

impl Store {
    /// Connects to `url` (`sqlite:…` or `postgres://…`); a SQLite file is created if missing.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let db = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                // Reads map the file instead of copying pages through read(2) into each
                // connection's own cache, which a write on the writer invalidates.
                .pragma("mmap_size", SQLITE_MMAP_BYTES.to_string());
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            // SQLite's default checkpoints every 1,000 pages inside the COMMIT that crosses
            // it: copying the WAL back into the file and syncing it, while every write
            // waits. Measured under composite-create load, moving that to `checkpoint`
            // (a reader connection) gave the writer about 10 % more creates a second.
            let writer = options.clone().pragma(
                "wal_autocheckpoint",
                SQLITE_WRITER_CHECKPOINT_PAGES.to_string(),
            );
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(writer)
                .await?;
            // An in-memory database exists once per connection: readers must share the writer.
            let read = if in_memory {
                write.clone()
            } else {
                SqlitePoolOptions::new()
                    .max_connections(max_connections.max(2))
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await?
            };
            Db::Sqlite { read, write }
        } else {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await?;
            Db::Postgres(pool)
        };
        Ok(Self { db })
    }

    /// Which engine this store uses.
    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    fn migrator(&self) -> &'static Migrator {
        match self.db {
            Db::Sqlite { .. } => &SQLITE_MIGRATIONS,
            Db::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies pending migrations. Safe to run from several processes at once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = self.migrator();
        write!(self, |pool| migrator.run(pool).await)?;
        Ok(())
    }

    /// Ready = the database answers and every migration this binary knows is applied.
    pub async fn readiness(&self) -> Result<(), StoreError> {
        const SQL: &str =
            "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success = TRUE";
        let applied: i64 = read!(self, |pool| sqlx::query_scalar(SQL).fetch_one(pool).await)?;
        let expected = self.migrator().iter().map(|m| m.version).max().unwrap_or(0);
        if applied < expected {
            return Err(StoreError::Corrupt(format!(
                "schema at version {applied}, this binary needs {expected}"
            )));
        }
        Ok(())
    }

    /// PostgreSQL's autovacuum is switched off for this database. Its analyses keep the
    /// planner's statistics current as tables grow; without them, the queries that fetch
    /// the line items and emails of a page of cases by id fall back to whole-table scans
    /// (in a soak, a page of 20 cases took 88 ms at 80k line items). SQLite plans
    /// without statistics and never asks this.
    pub async fn autovacuum_off(&self) -> Result<bool, StoreError> {
        let Db::Postgres(pool) = &self.db else {
            return Ok(false);
        };
        let setting: String = sqlx::query_scalar("SELECT current_setting('autovacuum')")
            .fetch_one(pool)
            .await?;
        Ok(setting == "off")
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match &self.db {
            // IMMEDIATE takes the write lock up front, so a transaction that reads before it
            // writes never fails with SQLITE_BUSY when another process wrote in between.
            Db::Sqlite { write, .. } => Tx::Sqlite(write.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Copies what the WAL of a SQLite file holds back into the file, as far as readers
    /// allow, without waiting for the writer or readers (a passive checkpoint), from a
    /// reader connection. Nothing for PostgreSQL; a no-op for an in-memory database.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if let Db::Sqlite { read, .. } = &self.db {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(read)
                .await?;
        }
        Ok(())
    }

    /// Closes every connection (on shutdown).
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

impl Tx {
    /// Makes every write of the transaction durable.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}
