//! `POST /v1/logs`: an OTLP/HTTP logs receiver (protobuf or JSON) that turns log
//! records back into events (see [`usage_otlp::receive`]) and feeds the same
//! pipeline, so the gateway can stand where a per-host collector stands.
// Handlers return a ready `Response` as their error, as axum handlers do.
#![allow(clippy::result_large_err)]

use crate::server::{accept_events, body_bytes, error, Gateway};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use prost::Message;
use std::sync::Arc;
use usage_core::Event;
use usage_otlp::receive::{events_from_body, ReceiveError, ReceiveOptions};

pub(crate) fn routes() -> Router<Arc<Gateway>> {
    Router::new().route("/v1/logs", post(logs))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"))
}

async fn logs(State(g): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    let json = is_json(&headers);
    let r = accept_events(&g, &headers, |g| decode(g, &headers, body, json)).await;
    if r.status() != StatusCode::ACCEPTED {
        return r;
    }
    // OTLP clients expect 200 with an ExportLogsServiceResponse.
    let resp = ExportLogsServiceResponse { partial_success: None };
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

fn decode(g: &Gateway, headers: &HeaderMap, body: Bytes, json: bool) -> Result<Vec<Event>, Response> {
    let raw = body_bytes(headers, body, g.cfg.max_body)?;
    let opts = ReceiveOptions {
        max_events: g.cfg.max_events,
        allow_unknown_kinds: g.cfg.allow_unknown_kinds,
    };
    events_from_body(&raw, json, &opts).map_err(|e| match e {
        ReceiveError::TooMany(_) => {
            g.counters.reject("too_large");
            error(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        ReceiveError::Invalid(_) => {
            g.counters.reject("invalid");
            error(StatusCode::BAD_REQUEST, e.to_string())
        }
    })
}
