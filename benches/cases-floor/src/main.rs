//! See Cargo.toml: prints `creates/s` and p99 ms of the raw composite insert.

use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

const CASE: &str = "INSERT INTO cases (id, case_number, subject, description, status, priority, \
    origin, contact_name, contact_email, owner_id, created_by, created_at, updated_at, version) \
    VALUES ($1, NUMBER, 'Printer on fire', 'Smoke from tray 2', 'New', 'High', 'Mobile', 'Ada', \
    'ada@example.com', NULL, $2, $3, $3, 1) RETURNING case_number";
const ITEMS: &str = "INSERT INTO case_line_items (case_id, id, position, sku, description, \
    quantity, unit_price_minor, currency) VALUES ($1, $2, 0, 'TONER-1', 'Toner', 2, 1999, 'EUR'), \
    ($1, $3, 1, 'DRUM-7', '', 1, 4500, 'EUR'), ($1, $4, 2, 'FAN', '', 3, 0, 'JPY')";
const OUTBOX: &str = "INSERT INTO email_outbox (id, case_id, recipient, template, message_id, \
    status, attempts, next_attempt_at, created_at) VALUES ($1, $2, 'ada@example.com', \
    'case_created', $3, 'queued', 0, $4, $4)";

fn id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

macro_rules! create {
    ($pool:expr, $case_sql:expr, $client:expr) => {{
        let mut tx = $pool.begin().await?;
        let case = id();
        let t = now();
        let _: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe($case_sql.clone()))
            .bind(&case).bind($client).bind(t).fetch_one(&mut *tx).await?;
        sqlx::query(ITEMS).bind(&case).bind(id()).bind(id()).bind(id()).execute(&mut *tx).await?;
        let mail = id();
        sqlx::query(OUTBOX).bind(&mail).bind(&case).bind(format!("<{mail}@localhost>")).bind(t)
            .execute(&mut *tx).await?;
        tx.commit().await?;
        Ok::<(), sqlx::Error>(())
    }};
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, client, secs, conc] = args.as_slice() else {
        return Err("usage: cases-floor DATABASE_URL CLIENT_ID SECONDS CONCURRENCY".into());
    };
    let secs: u64 = secs.parse()?;
    let conc: usize = conc.parse()?;
    let stop = Arc::new(AtomicBool::new(false));
    let sqlite = url.starts_with("sqlite:");
    enum Pool {
        Sqlite(sqlx::SqlitePool),
        Pg(sqlx::PgPool),
    }
    // The same pools gatehouse uses: SQLite WAL with one writer; a PostgreSQL pool.
    let pool = if sqlite {
        let opts = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        Pool::Sqlite(SqlitePoolOptions::new().max_connections(1).connect_with(opts).await?)
    } else {
        let opts = PgConnectOptions::from_str(url)?;
        Pool::Pg(PgPoolOptions::new().max_connections(10).connect_with(opts).await?)
    };
    let pool = Arc::new(pool);
    let case_sql = Arc::new(if sqlite {
        CASE.replace("NUMBER", "(SELECT COALESCE(MAX(case_number), 1023) + 1 FROM cases)")
    } else {
        CASE.replace("NUMBER", "nextval('case_number_seq')")
    });
    let started = Instant::now();
    let tasks: Vec<_> = (0..conc)
        .map(|_| {
            let (pool, stop, client, case_sql) = (pool.clone(), stop.clone(), client.clone(), case_sql.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let done = match &*pool {
                        Pool::Sqlite(p) => async { create!(p, case_sql, &client) }.await,
                        Pool::Pg(p) => async { create!(p, case_sql, &client) }.await,
                    };
                    done?;
                    latencies.push(t.elapsed());
                }
                Ok::<Vec<Duration>, sqlx::Error>(latencies)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let p99 = all.get(all.len() * 99 / 100).copied().unwrap_or_default();
    println!("{:.1} {:.2}", all.len() as f64 / elapsed, p99.as_secs_f64() * 1000.0);
    Ok(())
}
