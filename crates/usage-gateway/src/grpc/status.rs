//! gRPC answers: a unary response with its trailers, and errors as trailers-only
//! responses whose status code says whether an OTLP client retries (the OTLP
//! specification's table: UNAVAILABLE always, RESOURCE_EXHAUSTED only with
//! RetryInfo, the rest never).

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine;
use http_body_util::{BodyExt, Full};
use prost::Message;

/// The gRPC status codes the gateway answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    InvalidArgument = 3,
    ResourceExhausted = 8,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

/// `google.rpc.Status`, carried base64 in `grpc-status-details-bin`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.RetryInfo`: how long the client should wait before retrying.
#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// The encodings a request message may be compressed with.
pub(crate) const ACCEPTED_ENCODINGS: &str = "gzip,zstd";

/// A successful unary answer: one uncompressed message, then `grpc-status: 0`.
pub(crate) fn ok(message: &impl Message) -> Response {
    let encoded = message.encode_to_vec();
    let mut framed = Vec::with_capacity(encoded.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    framed.extend_from_slice(&encoded);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let body = Full::new(Bytes::from(framed)).with_trailers(async move { Some(Ok(trailers)) });
    grpc_response(Body::new(body))
}

/// A trailers-only error answer; `retry_after` adds a RetryInfo.
pub(crate) fn error(code: Code, message: &str, retry_after: Option<u64>) -> Response {
    let mut r = grpc_response(Body::empty());
    let h = r.headers_mut();
    h.insert("grpc-status", HeaderValue::from(code as i32));
    if let Ok(v) = HeaderValue::from_str(&percent_encode(message)) {
        h.insert("grpc-message", v);
    }
    if let Some(secs) = retry_after {
        let retry = RetryInfo {
            retry_delay: Some(ProtoDuration {
                seconds: secs as i64,
                nanos: 0,
            }),
        };
        let status = RpcStatus {
            code: code as i32,
            message: message.to_string(),
            details: vec![Any {
                type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
                value: retry.encode_to_vec(),
            }],
        };
        let details = base64::engine::general_purpose::STANDARD_NO_PAD.encode(status.encode_to_vec());
        if let Ok(v) = HeaderValue::from_str(&details) {
            h.insert("grpc-status-details-bin", v);
        }
    }
    if code == Code::Unimplemented {
        h.insert("grpc-accept-encoding", HeaderValue::from_static(ACCEPTED_ENCODINGS));
    }
    r
}

fn grpc_response(body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/grpc"));
    h.insert("grpc-accept-encoding", HeaderValue::from_static(ACCEPTED_ENCODINGS));
    r
}

/// The gRPC code for one of the shared ingest steps' HTTP answers, so both
/// transports refuse alike: what an OTLP/HTTP client retries, a gRPC client retries.
pub(crate) fn code_for(status: StatusCode) -> Code {
    match status.as_u16() {
        401 => Code::Unauthenticated,
        400 | 422 => Code::InvalidArgument,
        // Too large will stay too large: no RetryInfo, so clients do not retry it.
        413 => Code::ResourceExhausted,
        415 => Code::Unimplemented,
        408 | 409 | 429 | 502..=504 => Code::Unavailable,
        _ => Code::Internal,
    }
}

/// Turns a shared step's JSON error answer into the gRPC error with the same
/// message, and its `Retry-After` into RetryInfo.
pub(crate) async fn from_http(answer: Response) -> Response {
    let code = code_for(answer.status());
    let retry_after = answer
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = match answer.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| "request refused".into());
    error(code, &message, retry_after)
}

/// `grpc-message` is percent-encoded: bytes outside printable ASCII, and `%`.
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_percent_encoded_as_grpc_requires() {
        assert_eq!(percent_encode("50% of ü"), "50%25 of %C3%BC");
        assert_eq!(percent_encode("plain: ok"), "plain: ok");
    }

    #[test]
    fn retryable_http_answers_stay_retryable() {
        assert_eq!(code_for(StatusCode::SERVICE_UNAVAILABLE), Code::Unavailable);
        assert_eq!(code_for(StatusCode::TOO_MANY_REQUESTS), Code::Unavailable);
        assert_eq!(code_for(StatusCode::UNAUTHORIZED), Code::Unauthenticated);
        assert_eq!(code_for(StatusCode::BAD_REQUEST), Code::InvalidArgument);
        assert_eq!(code_for(StatusCode::PAYLOAD_TOO_LARGE), Code::ResourceExhausted);
    }

    #[test]
    fn retry_after_becomes_retry_info() {
        let r = error(Code::Unavailable, "busy", Some(3));
        let details = r.headers()["grpc-status-details-bin"].to_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(details)
            .unwrap();
        let status = RpcStatus::decode(&bytes[..]).unwrap();
        assert_eq!(status.code, 14);
        let info = RetryInfo::decode(&status.details[0].value[..]).unwrap();
        assert_eq!(info.retry_delay.unwrap().seconds, 3);
        assert_eq!(r.headers()["grpc-status"], "14");
    }
}
