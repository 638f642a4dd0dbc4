//! The HTTP server: `/v1/metrics` ingest, health, readiness and Prometheus metrics.
// Handlers return a ready `Response` as their error, as axum handlers do.
#![allow(clippy::result_large_err)]

use crate::auth::Keys;
use crate::config::GatewayConfig;
use crate::idempotency::{Seen, Window};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use usage_core::json::Decoder;
use usage_core::{AcceptError, Event, Pipeline, Value};

/// Gateway counters, for `/metrics`.
#[derive(Default)]
pub struct Counters {
    pub(crate) received_events: AtomicU64,
    pub(crate) accepted_events: AtomicU64,
    pub(crate) duplicate_batches: AtomicU64,
    rejected: [AtomicU64; REASONS.len()],
}

const REASONS: [&str; 8] = [
    "unauthorized",
    "forbidden",
    "invalid",
    "too_large",
    "rate_limited",
    "overloaded",
    "in_progress",
    "unsupported",
];

impl Counters {
    pub(crate) fn reject(&self, reason: &str) {
        if let Some(i) = REASONS.iter().position(|r| *r == reason) {
            self.rejected[i].fetch_add(1, Relaxed);
        }
    }
}

/// Shared by the handlers.
pub struct Gateway {
    pub(crate) pipeline: Pipeline,
    pub(crate) keys: Keys,
    pub(crate) idempotency: Window,
    pub(crate) cfg: GatewayConfig,
    pub(crate) counters: Counters,
    pub(crate) decoder: Decoder,
    pub(crate) pipeline_capacity: usize,
}

/// A JSON error body: `{"error": "..."}` with the status.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": message.into() }).to_string();
    (status, [("content-type", "application/json")], body).into_response()
}

fn with_retry_after(mut r: Response, secs: u64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert("retry-after", v);
    }
    r
}

/// The body, inflated when gzip, bounded at 8x the compressed limit.
pub(crate) fn body_bytes(headers: &HeaderMap, body: Bytes, max: usize) -> Result<Vec<u8>, Response> {
    match headers.get("content-encoding").and_then(|v| v.to_str().ok()) {
        None | Some("identity") => Ok(body.to_vec()),
        Some("gzip") => {
            let limit = (max as u64).saturating_mul(8);
            let mut out = Vec::new();
            let mut dec = flate2::read::MultiGzDecoder::new(&body[..]).take(limit + 1);
            dec.read_to_end(&mut out)
                .map_err(|e| error(StatusCode::BAD_REQUEST, format!("body: invalid gzip: {e}")))?;
            if out.len() as u64 > limit {
                return Err(error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body inflates beyond {limit} bytes"),
                ));
            }
            Ok(out)
        }
        Some(other) => Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content-encoding {other:?} is not supported (use gzip or none)"),
        )),
    }
}

/// Checks the key, the idempotency window, decoding, project binding and the
/// rate limit, then hands the events to the pipeline and answers 202 once they are durable.
pub(crate) async fn accept_events(
    g: &Gateway,
    headers: &HeaderMap,
    decode: impl FnOnce(&Gateway) -> Result<Vec<Event>, Response>,
) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    let Some(key) = g.keys.find(auth) else {
        g.counters.reject("unauthorized");
        return error(StatusCode::UNAUTHORIZED, "missing or invalid bearer key");
    };
    let idem = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("{}:{k}", key.name));
    if let Some(k) = &idem {
        match g.idempotency.begin(k) {
            Seen::New => {}
            Seen::Done(n) => {
                g.counters.duplicate_batches.fetch_add(1, Relaxed);
                let body = serde_json::json!({ "accepted": n, "duplicate": true }).to_string();
                return (StatusCode::ACCEPTED, [("content-type", "application/json")], body).into_response();
            }
            Seen::InProgress => {
                g.counters.reject("in_progress");
                return with_retry_after(
                    error(
                        StatusCode::CONFLICT,
                        "a request with this Idempotency-Key is in progress",
                    ),
                    1,
                );
            }
        }
    }
    let finish = |accepted: Option<usize>| {
        if let Some(k) = &idem {
            g.idempotency.finish(k, accepted);
        }
    };
    let events = match decode(g) {
        Ok(e) => e,
        Err(r) => {
            finish(None);
            return r;
        }
    };
    g.counters.received_events.fetch_add(events.len() as u64, Relaxed);
    if let Some(project) = &key.project {
        for (i, e) in events.iter().enumerate() {
            if let Some(Value::Str(p)) = e.field("project") {
                if p != project {
                    finish(None);
                    g.counters.reject("forbidden");
                    return error(
                        StatusCode::FORBIDDEN,
                        format!("events[{i}].project: this key is bound to project `{project}`, got `{p}`"),
                    );
                }
            }
        }
    }
    if let Err(secs) = key.take(events.len()) {
        finish(None);
        g.counters.reject("rate_limited");
        return with_retry_after(
            error(
                StatusCode::TOO_MANY_REQUESTS,
                format!("rate limit for key {}", key.name),
            ),
            secs,
        );
    }
    let n = events.len();
    match g.pipeline.accept(events, g.cfg.accept_timeout).await {
        Ok(()) => {
            finish(Some(n));
            g.counters.accepted_events.fetch_add(n as u64, Relaxed);
            let body = serde_json::json!({ "accepted": n }).to_string();
            (StatusCode::ACCEPTED, [("content-type", "application/json")], body).into_response()
        }
        Err(e) => {
            finish(None);
            g.counters.reject("overloaded");
            let status = match e {
                AcceptError::Full | AcceptError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
                AcceptError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            };
            with_retry_after(error(status, format!("not accepted: {e}")), 1)
        }
    }
}

/// Decodes `{"events":[...]}`; errors name the event and field.
fn decode_metrics(g: &Gateway, headers: &HeaderMap, body: Bytes) -> Result<Vec<Event>, Response> {
    let raw = body_bytes(headers, body, g.cfg.max_body)?;
    let bad = |m: String| {
        g.counters.reject("invalid");
        error(StatusCode::BAD_REQUEST, m)
    };
    let doc: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| bad(format!("body: invalid JSON: {e}")))?;
    let Some(list) = doc.get("events").and_then(|v| v.as_array()) else {
        return Err(bad("body: expected {\"events\": [...]}".into()));
    };
    if list.len() > g.cfg.max_events {
        g.counters.reject("too_large");
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "events: {} events, more than the limit of {}",
                list.len(),
                g.cfg.max_events
            ),
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let e = g
            .decoder
            .decode_value(v.clone())
            .map_err(|e| bad(format!("events[{i}]: {e}")))?;
        out.push(e);
    }
    Ok(out)
}

async fn metrics_ingest(State(g): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    accept_events(&g, &headers, |g| decode_metrics(g, &headers, body)).await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(g): State<Arc<Gateway>>) -> Response {
    let s = g.pipeline.stats();
    let cap = g.pipeline_capacity;
    let full_ingest = s.queued_events as f64 > cap as f64 * 0.9;
    let spool_full = s.spool.as_ref().is_some_and(|sp| sp.bytes >= sp.max_bytes);
    let body = serde_json::json!({
        "ready": !full_ingest && !spool_full,
        "queued_events": s.queued_events,
        "spool_full": spool_full,
        "paused_exporters": s.exporters.iter().filter(|e| e.paused).map(|e| e.name.clone()).collect::<Vec<_>>(),
    });
    let status = if full_ingest || spool_full {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

async fn prometheus(State(g): State<Arc<Gateway>>) -> Response {
    use std::fmt::Write;
    let c = &g.counters;
    let mut o = String::new();
    let _ = writeln!(o, "# HELP usage_gateway_received_events_total Events received in requests that passed authentication.\n# TYPE usage_gateway_received_events_total counter");
    let _ = writeln!(
        o,
        "usage_gateway_received_events_total {}",
        c.received_events.load(Relaxed)
    );
    let _ = writeln!(o, "# HELP usage_gateway_forwarded_events_total Events accepted into the pipeline (durable).\n# TYPE usage_gateway_forwarded_events_total counter");
    let _ = writeln!(
        o,
        "usage_gateway_forwarded_events_total {}",
        c.accepted_events.load(Relaxed)
    );
    let _ = writeln!(o, "# HELP usage_gateway_duplicate_batches_total Batches answered from the idempotency window.\n# TYPE usage_gateway_duplicate_batches_total counter");
    let _ = writeln!(
        o,
        "usage_gateway_duplicate_batches_total {}",
        c.duplicate_batches.load(Relaxed)
    );
    let _ = writeln!(o, "# HELP usage_gateway_rejected_requests_total Requests refused, by reason.\n# TYPE usage_gateway_rejected_requests_total counter");
    for (i, r) in REASONS.iter().enumerate() {
        let _ = writeln!(
            o,
            "usage_gateway_rejected_requests_total{{reason=\"{r}\"}} {}",
            c.rejected[i].load(Relaxed)
        );
    }
    o.push_str(&g.pipeline.stats().to_prometheus());
    ([("content-type", "text/plain; version=0.0.4")], o).into_response()
}

/// The routes (also used by tests, on any listener).
pub fn router(g: Arc<Gateway>) -> Router {
    let limit = g.cfg.max_body;
    Router::new()
        .route("/v1/metrics", post(metrics_ingest))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .merge(crate::otlp::routes())
        .layer(DefaultBodyLimit::max(limit))
        .with_state(g)
}
