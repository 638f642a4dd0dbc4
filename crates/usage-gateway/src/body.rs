//! A request body as bytes: within the size limit, inflated when gzip, every refusal
//! a JSON error and counted.
// Handlers return a ready `Response` as their error, as axum handlers do.
#![allow(clippy::result_large_err)]

use crate::state::{error, Gateway};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use std::io::Read;

/// The body, inflated when gzip, bounded at 8x the compressed limit.
pub(crate) fn body_bytes(
    g: &Gateway,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<u8>, Response> {
    let max = g.cfg.max_body;
    let body = match body {
        Ok(b) => b,
        Err(BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_))) => {
            g.counters.reject("too_large");
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body: larger than the limit of {max} bytes (gateway.max_body)"),
            ));
        }
        Err(e) => {
            g.counters.reject("invalid");
            return Err(error(StatusCode::BAD_REQUEST, format!("body: cannot be read: {e}")));
        }
    };
    let encoding = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("identity") | Some("") => Ok(body.to_vec()),
        Some("gzip") => {
            let limit = (max as u64).saturating_mul(8);
            let mut out = Vec::new();
            let mut dec = flate2::read::MultiGzDecoder::new(&body[..]).take(limit + 1);
            if let Err(e) = dec.read_to_end(&mut out) {
                g.counters.reject("invalid");
                return Err(error(StatusCode::BAD_REQUEST, format!("body: invalid gzip: {e}")));
            }
            if out.len() as u64 > limit {
                g.counters.reject("too_large");
                return Err(error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body inflates beyond {limit} bytes"),
                ));
            }
            Ok(out)
        }
        Some(other) => {
            g.counters.reject("unsupported");
            Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content-encoding {other:?} is not supported (use gzip or none)"),
            ))
        }
    }
}
