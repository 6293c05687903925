//! Group commit: concurrent callers of one statement share a round trip.
//!
//! A [`Batcher`] owns a task that takes the first queued call, then every call queued
//! behind it (up to a maximum), and runs them as one statement. Nothing waits for a batch
//! to fill: a lone call runs at once, and batches grow only while the database is busy
//! with the previous one — under load one statement carries many calls and the per-query
//! cost (a thread hop on SQLite, a round trip on PostgreSQL) is paid once per batch.
//!
//! If a batch fails as a whole (a deadlock between replicas, a connection lost), each of
//! its calls is retried alone, so every caller gets its own answer and its own error.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use super::{Store, StoreError};

type Job<I, O> = (I, oneshot::Sender<Result<O, StoreError>>);
type Run<I, O> = Arc<
    dyn Fn(Store, Vec<I>) -> Pin<Box<dyn Future<Output = Result<Vec<O>, StoreError>> + Send>>
        + Send
        + Sync,
>;

/// Calls waiting beyond this many make their callers wait to enqueue (backpressure).
const QUEUE: usize = 4096;

/// A queue of calls of one kind, run in batches by a task of its own.
pub struct Batcher<I, O> {
    queue: mpsc::Sender<Job<I, O>>,
}

impl<I, O> std::fmt::Debug for Batcher<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl<I, O> Batcher<I, O>
where
    I: Clone + Send + 'static,
    O: Send + 'static,
{
    /// Starts the task (on the current Tokio runtime). `run` gets up to `max` calls and
    /// answers each, in order; the task ends when the last [`Batcher`] handle is dropped.
    /// `name` labels the metrics `store_batch_calls` (calls per batch) and
    /// `store_batch_duration_seconds`. `workers` batches may run at once: while one runs,
    /// the next gathers.
    pub fn spawn<F, Fut>(
        name: &'static str,
        store: Store,
        max: usize,
        workers: usize,
        run: F,
    ) -> Self
    where
        F: Fn(Store, Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<O>, StoreError>> + Send + 'static,
    {
        let run: Run<I, O> = Arc::new(move |store, items| Box::pin(run(store, items)));
        let (queue, rx) = mpsc::channel(QUEUE);
        let metrics = Metrics {
            calls: metrics::histogram!("store_batch_calls", "batch" => name),
            duration: metrics::histogram!("store_batch_duration_seconds", "batch" => name),
        };
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers.max(1) {
            tokio::spawn(work(
                store.clone(),
                max.max(1),
                run.clone(),
                rx.clone(),
                metrics.clone(),
            ));
        }
        Self { queue }
    }

    /// Queues `item` and waits for its answer.
    pub async fn call(&self, item: I) -> Result<O, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((item, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Database(sqlx::Error::PoolClosed)
}

#[derive(Clone)]
struct Metrics {
    calls: metrics::Histogram,
    duration: metrics::Histogram,
}

async fn work<I: Clone, O>(
    store: Store,
    max: usize,
    run: Run<I, O>,
    rx: Arc<Mutex<mpsc::Receiver<Job<I, O>>>>,
    metrics: Metrics,
) {
    let mut jobs = Vec::with_capacity(max);
    while rx.lock().await.recv_many(&mut jobs, max).await > 0 {
        let items: Vec<I> = jobs.iter().map(|(item, _)| item.clone()).collect();
        let n = items.len();
        let started = std::time::Instant::now();
        let result = run(store.clone(), items).await;
        metrics.calls.record(n as f64);
        metrics.duration.record(started.elapsed().as_secs_f64());
        match result {
            Ok(answers) if answers.len() == n => {
                for ((_, reply), answer) in jobs.drain(..).zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Ok(answers) => {
                let e = format!("a batch of {n} calls got {} answers", answers.len());
                for (_, reply) in jobs.drain(..) {
                    let _ = reply.send(Err(StoreError::Corrupt(e.clone())));
                }
            }
            Err(e) if n == 1 => {
                if let Some((_, reply)) = jobs.pop() {
                    let _ = reply.send(Err(e));
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, calls = n, "batch failed; retrying its calls one by one");
                for (item, reply) in jobs.drain(..) {
                    let answer = run(store.clone(), vec![item]).await.and_then(|mut one| {
                        one.pop()
                            .ok_or_else(|| StoreError::Corrupt("a call got no answer".into()))
                    });
                    let _ = reply.send(answer);
                }
            }
        }
    }
}
