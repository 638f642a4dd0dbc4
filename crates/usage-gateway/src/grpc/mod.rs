//! OTLP/gRPC: the logs service's `Export` over HTTP/2 (prior knowledge, as OTel
//! SDKs and collectors send it without TLS), beside OTLP/HTTP. A request goes
//! through the same steps as `/v1/logs` (key from the `authorization` metadata,
//! limits, idempotency, record-by-record refusal, durable before the answer); only
//! the framing and the answers are gRPC's.
// Handlers return a ready `Response` as their error, as axum handlers do.
#![allow(clippy::result_large_err)]

mod status;

use crate::accept::{accept_events, Decoded};
use crate::body::inflate;
use crate::state::{error as http_error, Gateway};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use status::{Code, ACCEPTED_ENCODINGS};
use std::sync::Arc;

/// The logs service's one method.
pub(crate) const EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// The gRPC routes, for the OTLP/gRPC listener.
pub(crate) fn routes(g: Arc<Gateway>) -> Router {
    Router::new()
        .route(EXPORT_PATH, post(export))
        .fallback(|| async {
            status::error(
                Code::Unimplemented,
                &format!("this listener serves only {EXPORT_PATH}"),
                None,
            )
        })
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(g)
}

/// How a request's message may be compressed (`grpc-encoding`).
#[derive(Clone, Copy)]
enum MessageEncoding {
    Identity,
    Gzip,
    Zstd,
}

fn message_encoding(headers: &HeaderMap) -> Result<MessageEncoding, String> {
    match headers.get("grpc-encoding").map(|v| v.to_str().map(str::trim)) {
        None | Some(Ok("identity")) | Some(Ok("")) => Ok(MessageEncoding::Identity),
        Some(Ok("gzip")) => Ok(MessageEncoding::Gzip),
        Some(Ok("zstd")) => Ok(MessageEncoding::Zstd),
        Some(Ok(other)) => Err(format!(
            "grpc-encoding {other:?} is not supported (use {ACCEPTED_ENCODINGS} or none)"
        )),
        Some(Err(_)) => Err("grpc-encoding is not ASCII".into()),
    }
}

async fn export(State(g): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Response {
    let is_grpc = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "application/grpc" || v.starts_with("application/grpc+proto"));
    if !is_grpc {
        // Not a gRPC client: the gRPC specification answers in HTTP.
        g.counters.reject("unsupported");
        return http_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content-type must be application/grpc (protobuf)",
        );
    }
    let encoding = match message_encoding(&headers) {
        Ok(e) => e,
        Err(message) => {
            g.counters.reject("unsupported");
            return status::error(Code::Unimplemented, &message, None);
        }
    };
    // The shared steps read the body as sent: a gRPC message is never
    // content-encoded, its compression is the frame's.
    let mut shared = headers;
    shared.remove("content-encoding");
    let decode = move |g: &Gateway, raw: &[u8]| decode(g, raw, encoding);
    match accept_events(&g, &shared, body, |_| Ok(()), decode).await {
        Ok(outcome) => status::ok(&crate::otlp::response_of(&outcome)),
        Err(refused) => status::from_http(refused).await,
    }
}

/// One length-prefixed message (a unary call carries exactly one), inflated when
/// its flag says so, then read as OTLP protobuf.
fn decode(g: &Gateway, framed: &[u8], encoding: MessageEncoding) -> Result<Decoded, Response> {
    let invalid = |message: String| {
        g.counters.reject("invalid");
        http_error(StatusCode::BAD_REQUEST, message)
    };
    let (compressed, message) = unframe(framed).map_err(invalid)?;
    if !compressed {
        return crate::otlp::decode(g, message, false);
    }
    let inflated = match encoding {
        MessageEncoding::Identity => {
            return Err(invalid(
                "the message is flagged compressed but no grpc-encoding was sent".into(),
            ))
        }
        MessageEncoding::Gzip => inflate(g, flate2::read::MultiGzDecoder::new(message), "gzip")?,
        MessageEncoding::Zstd => match zstd::stream::read::Decoder::with_buffer(message) {
            Ok(decoder) => inflate(g, decoder, "zstd")?,
            Err(e) => return Err(invalid(format!("message: invalid zstd: {e}"))),
        },
    };
    crate::otlp::decode(g, &inflated, false)
}

/// Splits the 5-byte prefix (compressed flag, big-endian length) from the message.
fn unframe(framed: &[u8]) -> Result<(bool, &[u8]), String> {
    let Some((prefix, message)) = framed.split_first_chunk::<5>() else {
        return Err(format!(
            "a gRPC message needs a 5-byte prefix; the body has {} bytes",
            framed.len()
        ));
    };
    let compressed = match prefix[0] {
        0 => false,
        1 => true,
        flag => return Err(format!("gRPC message flag {flag} is neither 0 nor 1")),
    };
    let declared = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    if declared != message.len() {
        return Err(format!(
            "the gRPC message declares {declared} bytes and {} follow (a unary call carries exactly one message)",
            message.len()
        ));
    }
    Ok((compressed, message))
}

#[cfg(test)]
mod tests {
    use super::unframe;

    #[test]
    fn framing_is_checked_byte_for_byte() {
        assert_eq!(unframe(&[0, 0, 0, 0, 2, 7, 8]), Ok((false, &[7u8, 8][..])));
        assert_eq!(unframe(&[1, 0, 0, 0, 0]), Ok((true, &[][..])));
        assert!(unframe(&[0, 0, 0]).unwrap_err().contains("5-byte prefix"));
        assert!(unframe(&[2, 0, 0, 0, 0]).unwrap_err().contains("flag 2"));
        assert!(unframe(&[0, 0, 0, 0, 3, 1])
            .unwrap_err()
            .contains("declares 3 bytes and 1 follow"));
    }
}
