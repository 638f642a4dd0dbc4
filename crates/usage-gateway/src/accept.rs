//! The steps every ingest route shares: key, idempotency window, decoding, project
//! binding, rate limit, keeping the rejected records, then the pipeline. The route
//! turns the [`Outcome`] into its protocol's success answer.
// Handlers return a ready `Response` as their error, as axum handlers do.
#![allow(clippy::result_large_err)]

use crate::auth::Limited;
use crate::body::read_body;
use crate::idempotency::{self, Pending, Seen};
use crate::rejected::{Raw, Rejected};
use crate::state::{error, with_header, with_retry_after, Gateway};
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use usage_core::receive::RejectReason;

use usage_core::{json, AcceptError, Event, Resource, Value, MAX_EVENT_BYTES};

/// What a body became: events (with their positions in the request) and refused records.
#[derive(Default)]
pub(crate) struct Decoded {
    pub events: Vec<Event>,
    /// `indices[i]` is the position of `events[i]` in the request.
    pub indices: Vec<usize>,
    pub rejected: Vec<Rejected>,
}

impl Decoded {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Decoded {
            events: Vec::with_capacity(n),
            indices: Vec::with_capacity(n),
            rejected: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, index: usize, event: Event) {
        self.events.push(event);
        self.indices.push(index);
    }
}

/// A request's result, for the route's success answer.
pub(crate) struct Outcome {
    pub accepted: usize,
    /// (position in the request, reason, message), in request order.
    pub rejected: Vec<(usize, RejectReason, String)>,
    /// Answered from the idempotency window; nothing was forwarded again.
    pub duplicate: bool,
}

/// Runs the shared steps. `Err` is a whole-request answer (401, 400, 408, 409, 413,
/// 415, 429, 503); `Ok` means every accepted event is durable and every refused
/// record kept. The body is read only once the key, the content type and a slot
/// among `max_in_flight` requests are granted.
pub(crate) async fn accept_events(
    g: &Arc<Gateway>,
    headers: &HeaderMap,
    body: Body,
    content_type: impl FnOnce(&HeaderMap) -> Result<(), String>,
    decode: impl FnOnce(&Gateway, &[u8]) -> Result<Decoded, Response> + Send + 'static,
) -> Result<Outcome, Response> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    let Some(key) = g.keys.find(auth) else {
        g.counters.reject("unauthorized");
        let refused = error(StatusCode::UNAUTHORIZED, "missing or invalid bearer key");
        return Err(with_header(refused, "www-authenticate", "Bearer"));
    };
    if let Err(message) = content_type(headers) {
        g.counters.reject("unsupported");
        return Err(error(StatusCode::UNSUPPORTED_MEDIA_TYPE, message));
    }
    let Ok(Ok(_slot)) = tokio::time::timeout(g.cfg.accept_timeout, g.in_flight.acquire()).await else {
        g.counters.reject("overloaded");
        return Err(with_retry_after(
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many requests in progress (gateway.max_in_flight); nothing was accepted",
            ),
            1,
        ));
    };
    let raw = read_body(g, headers, body).await?;
    let idem = match headers.get("idempotency-key").map(|v| v.as_bytes()) {
        Some(k) if !idempotency::valid_key(k) => {
            g.counters.reject("invalid");
            return Err(error(
                StatusCode::BAD_REQUEST,
                "Idempotency-Key must be 1-200 visible ASCII characters",
            ));
        }
        k => k,
    };
    // Forgets the key when the request ends any way but accepted (an early return,
    // or the client going away mid-request), so a retry is never stuck at 409.
    let mut pending = None;
    if let Some(k) = idem {
        match g.idempotency.begin(key.index, k, &raw) {
            Seen::New => pending = Some(Pending::new(&g.idempotency, key.index, k)),
            Seen::Done(n) => {
                g.counters.duplicate_batches.fetch_add(1, Relaxed);
                return Ok(Outcome {
                    accepted: n,
                    rejected: Vec::new(),
                    duplicate: true,
                });
            }
            Seen::InProgress => {
                g.counters.reject("in_progress");
                return Err(with_retry_after(
                    error(
                        StatusCode::CONFLICT,
                        "a request with this Idempotency-Key is in progress",
                    ),
                    1,
                ));
            }
            Seen::OtherBody => {
                g.counters.reject("invalid");
                return Err(error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "this Idempotency-Key was used with another body within the window; use a new key for a new batch",
                ));
            }
        }
    }
    // Decoding is CPU work of up to `max_decode_bytes`: off the runtime's threads,
    // so health checks and other connections are served meanwhile.
    let decoding = {
        let g = g.clone();
        tokio::task::spawn_blocking(move || decode(&g, &raw))
    };
    let decoded = match decoding.await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "decoding a request failed");
            Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the request could not be decoded",
            ))
        }
    };
    let mut decoded = match decoded {
        Ok(d) => d,
        Err(r) => return Err(r),
    };
    g.counters
        .received_events
        .fetch_add((decoded.events.len() + decoded.rejected.len()) as u64, Relaxed);
    if let Some(project) = &key.project {
        refuse_other_projects(&mut decoded, project, &key.unbound_kinds);
    }
    refuse_oversized(&mut decoded);
    match key.take(decoded.events.len()) {
        Ok(()) => {}
        Err(Limited::For(secs)) => {
            g.counters.reject("rate_limited");
            return Err(with_retry_after(
                error(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("rate limit for key {}", key.name),
                ),
                secs,
            ));
        }
        Err(Limited::Never(burst)) => {
            // No wait would let it through: the client must split it (413 does).
            g.counters.reject("too_large");
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{} events are more than key {}'s burst of {burst}: split the batch",
                    decoded.events.len(),
                    key.name
                ),
            ));
        }
    }
    let Decoded { events, rejected, .. } = decoded;
    if !rejected.is_empty() {
        // Kept before anything is accepted: if this fails the client re-sends the
        // whole request, and the accepted part of it dedups by id.
        match g.rejected.keep(&key.name, &rejected).await {
            Ok(path) => tracing::warn!(
                key = %key.name,
                records = rejected.len(),
                first_error = %rejected[0].message,
                file = %path.display(),
                "records rejected and kept"
            ),
            Err(e) => {
                g.counters.reject("overloaded");
                tracing::error!(dir = %g.rejected.dir().display(), error = %e, "cannot keep rejected records; request refused");
                return Err(with_retry_after(
                    error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "rejected records could not be kept; nothing was accepted",
                    ),
                    1,
                ));
            }
        }
        for r in &rejected {
            g.counters.reject_record(r.reason);
        }
    }
    let n = events.len();
    if n > 0 {
        let sample = g.tap.sample(g, &key.name, &events);
        if let Err(e) = g.pipeline.accept(events, g.cfg.accept_timeout).await {
            return Err(refused(g, &e));
        }
        g.tap.publish(sample);
    }
    if let Some(p) = pending {
        p.accepted(n);
    }
    g.counters.accepted_events.fetch_add(n as u64, Relaxed);
    Ok(Outcome {
        accepted: n,
        rejected: rejected.into_iter().map(|r| (r.index, r.reason, r.message)).collect(),
        duplicate: false,
    })
}

/// The answer when the pipeline did not take a request's events.
fn refused(g: &Gateway, e: &AcceptError) -> Response {
    let (reason, status) = match e {
        AcceptError::NotDurable => ("spool_error", StatusCode::SERVICE_UNAVAILABLE),
        AcceptError::TooLarge => ("too_large", StatusCode::PAYLOAD_TOO_LARGE),
        AcceptError::NotDelivered { transient: false, .. } => ("not_delivered", StatusCode::INTERNAL_SERVER_ERROR),
        AcceptError::NotDelivered { transient: true, .. } => ("not_delivered", StatusCode::SERVICE_UNAVAILABLE),
        _ => ("overloaded", StatusCode::SERVICE_UNAVAILABLE),
    };
    g.counters.reject(reason);
    let answer = error(status, format!("not accepted: {e}"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        with_retry_after(answer, 1)
    } else {
        answer
    }
}

/// Moves events too large for a spool record into the rejected records (review M7:
/// written, they would read back as damage). Record limits keep them far smaller;
/// this holds whatever the limits are set to.
fn refuse_oversized(decoded: &mut Decoded) {
    if decoded.events.iter().all(|e| e.approx_bytes() <= MAX_EVENT_BYTES) {
        return;
    }
    let events = std::mem::take(&mut decoded.events);
    let indices = std::mem::take(&mut decoded.indices);
    for (event, index) in events.into_iter().zip(indices) {
        if event.approx_bytes() <= MAX_EVENT_BYTES {
            decoded.push(index, event);
            continue;
        }
        decoded.rejected.push(Rejected {
            index,
            reason: RejectReason::TooLarge,
            message: format!(
                "events[{index}]: {} bytes, more than an event may take ({MAX_EVENT_BYTES})",
                event.approx_bytes()
            ),
            raw: Raw::Metrics(one_event_request(&event)),
        });
    }
    decoded.rejected.sort_by_key(|r| r.index);
}

/// `{"events":[<the event in the usage JSON encoding>]}`: postable to `/v1/metrics`.
fn one_event_request(event: &Event) -> Vec<u8> {
    let mut body = b"{\"events\":[".to_vec();
    json::write_event(&mut body, event, &Resource::default());
    body.extend_from_slice(b"]}");
    body
}

/// Moves events of another project than the key's, or of none (a kind without a
/// `project` the key may not send), into the rejected records (kept in the usage
/// JSON encoding, replayable to `/v1/metrics` with the right key). A binding fails
/// closed: only the key's own project passes.
fn refuse_other_projects(decoded: &mut Decoded, project: &str, unbound_kinds: &[String]) {
    let events = std::mem::take(&mut decoded.events);
    let indices = std::mem::take(&mut decoded.indices);
    for (event, index) in events.into_iter().zip(indices) {
        let why = match event.field("project") {
            Some(Value::Str(p)) if p == project => None,
            Some(Value::Str(p)) => Some(format!("this key is bound to project `{project}`, got `{p:.64}`")),
            None if unbound_kinds.iter().any(|k| k == event.kind()) => None,
            None => Some(format!(
                "this key is bound to project `{project}` and kind `{}` carries no project (list it in the key's unbound_kinds to allow it)",
                event.kind()
            )),
            Some(_) => Some(format!("this key is bound to project `{project}`, and the event's project is not a string")),
        };
        let Some(why) = why else {
            decoded.push(index, event);
            continue;
        };
        decoded.rejected.push(Rejected {
            index,
            reason: RejectReason::Project,
            message: format!("events[{index}].project: {why}"),
            raw: Raw::Metrics(one_event_request(&event)),
        });
    }
    decoded.rejected.sort_by_key(|r| r.index);
}
