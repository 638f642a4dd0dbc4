//! What every handler shares: the `Gateway` (pipeline, keys, idempotency window,
//! counters) and the JSON error answers.
// Handlers return a ready `Response` as their error, as axum handlers do.
#![allow(clippy::result_large_err)]

use crate::auth::Keys;
use crate::config::GatewayConfig;
use crate::idempotency::Window;
use crate::rejected::RejectedStore;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use usage_core::json::Decoder;
use usage_core::receive::RejectReason;
use usage_core::Pipeline;

/// Gateway counters, for `/metrics`.
#[derive(Default)]
pub struct Counters {
    pub(crate) received_events: AtomicU64,
    pub(crate) accepted_events: AtomicU64,
    pub(crate) duplicate_batches: AtomicU64,
    pub(crate) rejected: [AtomicU64; REASONS.len()],
    pub(crate) rejected_records: [AtomicU64; RejectReason::ALL.len()],
}

// Whole requests refused; a key's other-project events are refused per record (`project`).
pub(crate) const REASONS: [&str; 10] = [
    "unauthorized",
    "invalid",
    "too_large",
    "timeout",
    "rate_limited",
    "overloaded",
    "spool_error",
    "not_delivered",
    "in_progress",
    "unsupported",
];

impl Counters {
    pub(crate) fn reject(&self, reason: &str) {
        if let Some(i) = REASONS.iter().position(|r| *r == reason) {
            self.rejected[i].fetch_add(1, Relaxed);
        }
    }

    /// One record refused (and kept) while the rest of its request went on.
    pub(crate) fn reject_record(&self, reason: RejectReason) {
        if let Some(i) = RejectReason::ALL.iter().position(|r| *r == reason) {
            self.rejected_records[i].fetch_add(1, Relaxed);
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
    pub(crate) rejected: RejectedStore,
    /// Slots for requests being read, decoded and accepted (`max_in_flight`).
    pub(crate) in_flight: tokio::sync::Semaphore,
    /// Samples of accepted events for `usage tap`.
    pub(crate) tap: crate::tap::Tap,
}

/// A JSON error body: `{"error": "..."}` with the status.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": message.into() }).to_string();
    (status, [("content-type", "application/json")], body).into_response()
}

pub(crate) fn with_retry_after(r: Response, secs: u64) -> Response {
    with_header(r, "retry-after", &secs.to_string())
}

pub(crate) fn with_header(mut r: Response, name: &'static str, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
    r
}
