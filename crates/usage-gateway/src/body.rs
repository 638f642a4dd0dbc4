//! A request body as bytes, read only after the key was checked: within the size
//! limit and the body timeout, inflated when gzip or zstd (stopping at the inflated
//! limit, not after it), every refusal a JSON error and counted.
// Handlers return a ready `Response` as their error, as axum handlers do.
#![allow(clippy::result_large_err)]

use crate::state::{error, Gateway};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::io::Read;

/// The body as sent, then inflated when gzip or zstd.
pub(crate) async fn read_body(g: &Gateway, headers: &HeaderMap, body: Body) -> Result<Bytes, Response> {
    let max = g.cfg.max_body;
    let too_large = || {
        g.counters.reject("too_large");
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body: larger than the limit of {max} bytes (gateway.max_body)"),
        )
    };
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        // Refused before a byte of it is read.
        return Err(too_large());
    }
    let encoding = encoding(g, headers)?;
    let read = tokio::time::timeout(g.cfg.body_timeout, Limited::new(body, max).collect()).await;
    let sent = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large()),
        Ok(Err(e)) => {
            g.counters.reject("invalid");
            return Err(error(StatusCode::BAD_REQUEST, format!("body: cannot be read: {e}")));
        }
        Err(_) => {
            g.counters.reject("timeout");
            return Err(error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "body: not received within {:?} (gateway.body_timeout)",
                    g.cfg.body_timeout
                ),
            ));
        }
    };
    match encoding {
        Encoding::Identity => Ok(sent),
        Encoding::Gzip => inflate(g, flate2::read::MultiGzDecoder::new(&sent[..]), "gzip").map(Bytes::from),
        Encoding::Zstd => match zstd::stream::read::Decoder::with_buffer(&sent[..]) {
            Ok(decoder) => inflate(g, decoder, "zstd").map(Bytes::from),
            Err(e) => {
                g.counters.reject("invalid");
                Err(error(StatusCode::BAD_REQUEST, format!("body: invalid zstd: {e}")))
            }
        },
    }
}

enum Encoding {
    Identity,
    Gzip,
    /// What OpenTelemetry Collector exporters send with `compression: zstd`.
    Zstd,
}

/// The `Content-Encoding`, refused (415) before the body is read when unsupported.
fn encoding(g: &Gateway, headers: &HeaderMap) -> Result<Encoding, Response> {
    let value = headers
        .get("content-encoding")
        .map(|v| v.to_str().map(|s| s.trim().to_ascii_lowercase()));
    match value {
        None => Ok(Encoding::Identity),
        Some(Ok(v)) if v.is_empty() || v == "identity" => Ok(Encoding::Identity),
        Some(Ok(v)) if v == "gzip" => Ok(Encoding::Gzip),
        Some(Ok(v)) if v == "zstd" => Ok(Encoding::Zstd),
        other => {
            g.counters.reject("unsupported");
            let named = match other {
                Some(Ok(v)) => format!("{v:?}"),
                _ => "(not ASCII)".into(),
            };
            Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content-encoding {named} is not supported (use gzip, zstd or none)"),
            ))
        }
    }
}

/// Inflates into a buffer that never grows past the inflated limit: inflating
/// stops at the first byte beyond it.
pub(crate) fn inflate(g: &Gateway, mut decoder: impl Read, name: &str) -> Result<Vec<u8>, Response> {
    let limit = g.cfg.max_inflated_body;
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = match decoder.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) => {
                g.counters.reject("invalid");
                return Err(error(StatusCode::BAD_REQUEST, format!("body: invalid {name}: {e}")));
            }
        };
        if out.len() + n > limit {
            g.counters.reject("too_large");
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body: inflates beyond the limit of {limit} bytes (gateway.max_inflated_body)"),
            ));
        }
        if out.capacity() < out.len() + n {
            let want = (out.capacity() * 2).max(out.len() + n).min(limit);
            out.reserve_exact(want - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
}
