//! `POST /v1/logs`: an OTLP/HTTP logs receiver (protobuf or JSON) that turns log
//! records back into events (see [`usage_otlp_proto::receive`]) and feeds the same
//! pipeline, so the gateway can stand where a per-host collector stands. Records it
//! cannot take are kept and reported in `partial_success`; the rest are accepted.
// Handlers return a ready `Response` as their error, as axum handlers do.
#![allow(clippy::result_large_err)]

use crate::accept::{accept_events, Decoded, Outcome};
use crate::rejected::{Raw, Rejected};
use crate::state::{error, Gateway};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsPartialSuccess, ExportLogsServiceResponse};
use prost::Message;
use std::sync::Arc;
use usage_otlp_proto::receive::{events_from_body, ReceiveError, ReceiveOptions};

/// At most this many record errors are spelled out in `partial_success.error_message`.
const MESSAGES_SHOWN: usize = 5;

pub(crate) fn routes() -> Router<Arc<Gateway>> {
    Router::new().route("/v1/logs", post(logs))
}

/// The OTLP/HTTP encodings: `Some(true)` JSON, `Some(false)` protobuf, `None` neither.
fn encoding_of(headers: &HeaderMap) -> Option<bool> {
    let declared = headers.get("content-type").and_then(|v| v.to_str().ok())?;
    match declared.split(';').next()?.trim().to_ascii_lowercase().as_str() {
        "application/json" => Some(true),
        "application/x-protobuf" | "application/protobuf" => Some(false),
        _ => None,
    }
}

async fn logs(State(g): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    let json = encoding_of(&headers).unwrap_or(false);
    let content_type = |h: &HeaderMap| match encoding_of(h) {
        Some(_) => Ok(()),
        None => Err(format!(
            "content-type {:?} is not supported: /v1/logs takes application/x-protobuf or application/json",
            h.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("")
        )),
    };
    match accept_events(&g, &headers, body, content_type, move |g, raw| decode(g, raw, json)).await {
        Ok(outcome) => answer(&outcome, json),
        Err(r) => r,
    }
}

/// The `ExportLogsServiceResponse` for an outcome: `partial_success` names the
/// refused records (OTLP/HTTP and OTLP/gRPC alike).
pub(crate) fn response_of(o: &Outcome) -> ExportLogsServiceResponse {
    let partial_success = (!o.rejected.is_empty()).then(|| {
        let mut message = format!("{} log records rejected (kept by the gateway): ", o.rejected.len());
        let shown: Vec<&str> = o
            .rejected
            .iter()
            .take(MESSAGES_SHOWN)
            .map(|(_, _, m)| m.as_str())
            .collect();
        message.push_str(&shown.join("; "));
        if o.rejected.len() > MESSAGES_SHOWN {
            message.push_str("; ...");
        }
        ExportLogsPartialSuccess {
            rejected_log_records: o.rejected.len() as i64,
            error_message: message,
        }
    });
    ExportLogsServiceResponse { partial_success }
}

/// `200` with an `ExportLogsServiceResponse`.
fn answer(o: &Outcome, json: bool) -> Response {
    let resp = response_of(o);
    if json {
        let body = serde_json::to_string(&resp).unwrap_or_else(|_| "{}".into());
        (StatusCode::OK, [("content-type", "application/json")], body).into_response()
    } else {
        (
            StatusCode::OK,
            [("content-type", "application/x-protobuf")],
            resp.encode_to_vec(),
        )
            .into_response()
    }
}

pub(crate) fn decode(g: &Gateway, raw: &[u8], json: bool) -> Result<Decoded, Response> {
    let opts = ReceiveOptions {
        max_events: g.cfg.max_events,
        allow_unknown_kinds: g.cfg.allow_unknown_kinds,
        limits: g.cfg.record_limits(),
    };
    let received = events_from_body(raw, json, &opts).map_err(|e| match e {
        ReceiveError::TooMany(_) => {
            g.counters.reject("too_large");
            error(StatusCode::PAYLOAD_TOO_LARGE, format!("{e} (gateway.max_events)"))
        }
        ReceiveError::TooLarge(_) => {
            g.counters.reject("too_large");
            error(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        ReceiveError::Invalid(_) => {
            g.counters.reject("invalid");
            error(StatusCode::BAD_REQUEST, e.to_string())
        }
    })?;
    // Events and rejections are each in request order: merge the positions back.
    // The events stay where they were decoded (moving 1,000 events is 350 KB of copies).
    let mut indices = Vec::with_capacity(received.events.len());
    let mut rejected = received.rejected.iter().map(|r| r.index).peekable();
    let mut index = 0;
    for _ in 0..received.events.len() {
        while rejected.peek() == Some(&index) {
            rejected.next();
            index += 1;
        }
        indices.push(index);
        index += 1;
    }
    let mut out = Decoded {
        events: received.events,
        indices,
        rejected: Vec::new(),
    };
    out.rejected = received
        .rejected
        .into_iter()
        .map(|r| Rejected {
            index: r.index,
            reason: r.reason,
            message: r.message,
            raw: if json {
                Raw::OtlpJson(r.raw)
            } else {
                Raw::OtlpProtobuf(r.raw)
            },
        })
        .collect();
    Ok(out)
}
