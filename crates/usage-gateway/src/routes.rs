//! The routes: ingest (`/v1/metrics`, OTLP), health, readiness and Prometheus metrics.
// Handlers return a ready `Response` as their error, as axum handlers do.
#![allow(clippy::result_large_err)]

use crate::state::{error, Gateway, REASONS};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use usage_core::receive::RejectReason;

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
    let _ = writeln!(o, "# HELP usage_gateway_rejected_records_total Records refused and kept while the rest of their request was accepted, by reason.\n# TYPE usage_gateway_rejected_records_total counter");
    for (i, r) in RejectReason::ALL.iter().enumerate() {
        let _ = writeln!(
            o,
            "usage_gateway_rejected_records_total{{reason=\"{r}\"}} {}",
            c.rejected_records[i].load(Relaxed)
        );
    }
    o.push_str(&g.pipeline.stats().to_prometheus());
    ([("content-type", "text/plain; version=0.0.4")], o).into_response()
}

/// Every route on one listener: ingest and admin (also used by tests).
pub fn router(g: Arc<Gateway>) -> Router {
    ingest_router(g, true)
}

/// The ingest listener's routes: `/v1/metrics`, `/v1/logs` and health; with
/// `admin`, also what the admin listener serves.
pub fn ingest_router(g: Arc<Gateway>, admin: bool) -> Router {
    let mut routes = Router::new()
        .route("/v1/metrics", post(crate::metrics_api::ingest))
        .merge(crate::otlp::routes());
    if admin {
        routes = routes.merge(admin_routes());
    } else {
        routes = routes.route("/healthz", get(healthz)).route("/readyz", get(readyz));
    }
    finish(routes, g)
}

/// The admin listener's routes: health, readiness, Prometheus metrics and the tap.
pub fn admin_router(g: Arc<Gateway>) -> Router {
    finish(admin_routes(), g)
}

fn admin_routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .route("/v1/tap", get(crate::tap::tap))
}

fn finish(routes: Router<Arc<Gateway>>, g: Arc<Gateway>) -> Router {
    routes
        // Every answer is JSON, a wrong path or method included.
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route on this listener") })
        .method_not_allowed_fallback(|| async { error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here") })
        // Bodies are read by the ingest routes themselves, after the key (gateway.max_body).
        .layer(DefaultBodyLimit::disable())
        .with_state(g)
}
