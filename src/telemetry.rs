//! Logs, traces and metrics: tracing-subscriber for logs, OpenTelemetry (OTLP/HTTP) for
//! traces when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and a Prometheus recorder for metrics.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::{OnceLock, RwLock};
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::{HeaderValue, Method, StatusCode};
use metrics::{Counter, Histogram, Label, SharedString};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{Config, LogFormat};

/// Latency buckets (seconds) of `http_request_duration_seconds`.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Keeps the trace pipeline and the log writer alive; when dropped, flushes pending spans
/// and writes the log lines still queued.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    _log_writer: WorkerGuard,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("OpenTelemetry shutdown: {e}");
        }
    }
}

/// Log lines queued for the writer thread before a request that logs waits for it.
const QUEUED_LOG_LINES: usize = 64 * 1024;

/// Installs the global log/trace subscriber. Call once, from the binary, before anything logs.
///
/// A request formats its line and queues it; one writer thread writes the queue to stderr,
/// gathered into a few large writes while lines keep coming, and flushed whenever the queue
/// is empty. A request thread never waits for stderr (a pipe, a terminal, a journal) unless
/// the queue is full, and then it waits rather than lose a line: audit lines are among them.
pub fn init(config: &Config) -> anyhow::Result<TelemetryGuard> {
    let filter = || EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&config.log));
    let (writer, log_writer) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LOG_LINES)
        .thread_name("gatehouse-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let fmt = match config.log_format {
        // Colours only for a terminal (and not with NO_COLOR): in a file or a journal they
        // are escape codes, and writing them costs each line (the audit line of every
        // token among them).
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_ansi(
                std::io::stderr().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            )
            .with_writer(writer)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer)
            .boxed(),
    };
    let provider = otlp_provider()?;
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("gatehouse"))
            .with_filter(filter().unwrap_or_else(|_| EnvFilter::new("info")))
    });
    tracing_subscriber::registry()
        .with(fmt.with_filter(filter()?))
        .with(otel)
        .try_init()?;
    Ok(TelemetryGuard {
        provider,
        _log_writer: log_writer,
    })
}

/// Whether traces are exported (an OTLP endpoint is configured).
pub fn tracing_exported() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// A tracer provider exporting over OTLP/HTTP, configured by the standard `OTEL_*`
/// variables, or `None` when no endpoint is set.
fn otlp_provider() -> anyhow::Result<Option<SdkTracerProvider>> {
    let configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    if !configured {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()?;
    let resource = Resource::builder()
        .with_service_name(service_name())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    Ok(Some(provider))
}

fn service_name() -> String {
    std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "gatehouse".to_owned())
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".to_owned()),
                    LATENCY_BUCKETS,
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding program's); then ours
            // only renders what it records itself, which is still correct for /metrics.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

tokio::task_local! {
    /// The id of the request the current task serves (set by the observe middleware).
    pub static REQUEST_ID: HeaderValue;
}

/// The current request's id, for log lines outside the request span; `-` outside requests.
pub fn request_id() -> String {
    REQUEST_ID
        .try_with(|id| id.to_str().unwrap_or("-").to_owned())
        .unwrap_or_else(|_| "-".to_owned())
}

/// The counter and histogram of one (method, route, status).
#[derive(Clone)]
struct RequestMetrics {
    count: Counter,
    latency: Histogram,
}

/// Metric handles by route template, then method and status. Route templates are a small
/// closed set (the router's), so each is interned once; a request then finds its handles
/// without allocating or hashing label sets.
type HandleCache = RwLock<HashMap<&'static str, Vec<(Method, u16, RequestMetrics)>>>;

fn handles(method: &Method, route: &str, status: u16) -> RequestMetrics {
    static CACHE: OnceLock<HandleCache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Ok(map) = cache.read()
        && let Some(found) = map
            .get(route)
            .and_then(|list| list.iter().find(|(m, s, _)| m == method && *s == status))
    {
        return found.2.clone();
    }
    let labels = [
        Label::from_static_parts("method", method_label(method)),
        Label::new("route", SharedString::from_owned(route.to_owned())),
        Label::new("status", SharedString::from_owned(status.to_string())),
    ];
    let created = RequestMetrics {
        count: metrics::counter!("http_requests_total", labels.iter()),
        latency: metrics::histogram!("http_request_duration_seconds", labels.iter()),
    };
    if let Ok(mut map) = cache.write() {
        let key: &'static str = match map.get_key_value(route) {
            Some((k, _)) => k,
            // Bounded by the number of route templates (plus "unmatched").
            None => Box::leak(route.to_owned().into_boxed_str()),
        };
        map.entry(key)
            .or_default()
            .push((method.clone(), status, created.clone()));
    }
    created
}

/// Records one request in `http_requests_total` and `http_request_duration_seconds`,
/// labelled by method, route template and status.
pub fn record_request(
    method: &Method,
    route: Option<&MatchedPath>,
    status: StatusCode,
    started: Instant,
) {
    let route = route.map_or("unmatched", |r| r.as_str());
    let metrics = handles(method, route, status.as_u16());
    metrics.count.increment(1);
    metrics.latency.record(started.elapsed().as_secs_f64());
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
