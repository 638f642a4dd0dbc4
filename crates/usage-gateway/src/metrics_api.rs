//! `POST /v1/metrics`: `{"app"?, "host"?, "events": [...]}` where each event is
//! either the usage JSON encoding (it has `kind`) or a Daydream reporter event (it
//! has `type`). Answers `200 {"accepted", "rejected": [{"index","reason","error"}]}`.
// Handlers return a ready `Response` as their error, as axum handlers do.
#![allow(clippy::result_large_err)]

use crate::accept::{accept_events, Decoded, Outcome};
use crate::metrics_body::{self, BodyError};
use crate::rejected::{Raw, Rejected};
use crate::state::{error, Gateway};
use crate::stream_event::{self, Origin};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::Arc;
use usage_core::receive::RejectReason;
use usage_core::Event;

/// Which shape an event has, read from its keys without decoding it.
#[derive(Deserialize)]
struct Shape {
    #[serde(default)]
    kind: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "type")]
    ty: Option<serde::de::IgnoredAny>,
}

pub(crate) async fn ingest(State(g): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    match accept_events(&g, &headers, body, json_only, decode).await {
        Ok(outcome) => answer(&outcome),
        Err(r) => r,
    }
}

/// The body must be declared JSON (Daydream's reporter sends `application/json`).
fn json_only(headers: &HeaderMap) -> Result<(), String> {
    let declared = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = declared.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" {
        Ok(())
    } else {
        Err(format!(
            "content-type {declared:?} is not supported: /v1/metrics takes application/json"
        ))
    }
}

/// `200` for every client: Daydream's reporter treats any other 2xx as a failure.
fn answer(o: &Outcome) -> Response {
    let rejected: Vec<serde_json::Value> = o
        .rejected
        .iter()
        .map(|(index, reason, message)| serde_json::json!({ "index": index, "reason": reason.as_str(), "error": message }))
        .collect();
    let mut body = serde_json::json!({ "accepted": o.accepted, "rejected": rejected });
    if o.duplicate {
        body["duplicate"] = serde_json::Value::Bool(true);
    }
    (StatusCode::OK, [("content-type", "application/json")], body.to_string()).into_response()
}

pub(crate) fn decode(g: &Gateway, raw: &[u8]) -> Result<Decoded, Response> {
    let bad = |m: String| {
        g.counters.reject("invalid");
        error(StatusCode::BAD_REQUEST, m)
    };
    let body = match metrics_body::parse(raw, g.cfg.max_events) {
        Ok(b) => b,
        Err(BodyError::Invalid(m)) => return Err(bad(m)),
        Err(BodyError::TooMany(max)) => {
            g.counters.reject("too_large");
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("events: more than the limit of {max} (gateway.max_events)"),
            ));
        }
    };
    let (app, host) = (body.app.as_deref(), body.host.as_deref());
    let limits = g.cfg.record_limits();
    for (name, value) in [("app", app), ("host", host)] {
        if let Some(Err(m)) = value.map(|v| limits.check_string(format_args!("body: `{name}`"), v)) {
            return Err(bad(m));
        }
    }
    let origin = Origin::new(app, host);
    let mut out = Decoded::with_capacity(body.events.len());
    // Refused events are kept with `app` and `host`: together within the decode budget.
    let mut kept = 0usize;
    for (index, raw) in body.events.iter().enumerate() {
        match decode_event(g, raw, &origin) {
            Ok(event) => out.push(index, event),
            Err((reason, message)) => {
                let body = one_event_body(app, host, raw);
                kept += body.len();
                if kept > limits.max_decode_bytes {
                    g.counters.reject("too_large");
                    return Err(error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!(
                            "body: its refused events, kept with app and host, would take more than {} bytes (gateway.max_decode_bytes)",
                            limits.max_decode_bytes
                        ),
                    ));
                }
                out.rejected.push(Rejected {
                    index,
                    reason,
                    message: format!("events[{index}]: {message}"),
                    raw: Raw::Metrics(body),
                })
            }
        }
    }
    Ok(out)
}

fn decode_event(g: &Gateway, raw: &RawValue, origin: &Origin) -> Result<Event, (RejectReason, String)> {
    let shape: Shape = serde_json::from_str(raw.get())
        .map_err(|_| (RejectReason::Malformed, "an event must be a JSON object".to_string()))?;
    match (shape.kind, shape.ty) {
        (Some(_), _) => {
            let mut event = g
                .decoder
                .decode_or_derive(raw.get().as_bytes(), origin.seed)
                .map_err(|e| (e.reason(), e.to_string()))?;
            if event.resource().is_none() {
                if let Some(r) = &origin.resource {
                    event = event.with_resource(r.clone());
                }
            }
            Ok(event)
        }
        (None, Some(_)) => stream_event::decode(raw, origin),
        (None, None) => Err((
            RejectReason::NoKind,
            "an event needs `kind` (usage encoding) or `type` (stream event)".into(),
        )),
    }
}

/// `{"app","host","events":[<the event as sent>]}`: the event alone, postable again.
fn one_event_body(app: Option<&str>, host: Option<&str>, raw: &RawValue) -> Vec<u8> {
    let mut out = b"{".to_vec();
    for (name, v) in [("app", app), ("host", host)] {
        if let Some(v) = v {
            out.extend_from_slice(format!("\"{name}\":").as_bytes());
            usage_core::json::write_str(&mut out, v);
            out.push(b',');
        }
    }
    out.extend_from_slice(b"\"events\":[");
    out.extend_from_slice(raw.get().as_bytes());
    out.extend_from_slice(b"]}");
    out
}
