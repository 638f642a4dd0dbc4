//! Records the gateway refused, kept on disk before the request is answered: one
//! NDJSON file per request under `[gateway] rejected_dir`, one line per record with
//! the reason, the key's name and the record itself, ready to be posted again by
//! `usage rejected replay` (see docs/delivery.md, "Rejected records").

use base64::Engine;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use usage_core::receive::RejectReason;
use usage_core::{json, Timestamp};

/// A refused record in the form it can be posted again.
#[derive(Debug, Clone)]
pub(crate) enum Raw {
    /// A one-record OTLP request, protobuf (`/v1/logs`, `application/x-protobuf`).
    OtlpProtobuf(Vec<u8>),
    /// A one-record OTLP request, OTLP/JSON (`/v1/logs`, `application/json`).
    OtlpJson(Vec<u8>),
    /// A one-event `/v1/metrics` body (JSON).
    Metrics(Vec<u8>),
}

/// One refused record.
#[derive(Debug, Clone)]
pub(crate) struct Rejected {
    /// Position in the request.
    pub index: usize,
    pub reason: RejectReason,
    pub message: String,
    pub raw: Raw,
}

/// The directory rejected records are written to.
#[derive(Debug)]
pub(crate) struct RejectedStore {
    dir: PathBuf,
    /// Makes file names unique within one process and microsecond.
    sequence: AtomicU64,
}

impl RejectedStore {
    pub(crate) fn new(dir: PathBuf) -> Self {
        RejectedStore {
            dir,
            sequence: AtomicU64::new(0),
        }
    }

    /// Writes one request's rejected records durably (temp file, fsync, rename, dir
    /// fsync); only then may the request be answered.
    pub(crate) async fn keep(&self, key_name: &str, records: &[Rejected]) -> std::io::Result<PathBuf> {
        let at = Timestamp::now();
        let body = encode(at, key_name, records);
        let n = self.sequence.fetch_add(1, Relaxed);
        let path = self
            .dir
            .join(format!("rejected-{}-{}-{n}.ndjson", at.as_micros(), std::process::id()));
        let dir = self.dir.clone();
        let target = path.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            usage_core::fs::write_atomic(&target, &body)
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(path)
    }

    /// Where the files go.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The NDJSON lines: `at`, `key`, `index`, `reason`, `error`, then `path` and
/// `content_type` to post to, and the record as `body` (JSON) or `body_base64` (protobuf).
fn encode(at: Timestamp, key_name: &str, records: &[Rejected]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * 512);
    for r in records {
        out.extend_from_slice(b"{\"at\":\"");
        at.write_rfc3339(&mut out);
        out.extend_from_slice(b"\",\"key\":");
        json::write_str(&mut out, key_name);
        out.extend_from_slice(format!(",\"index\":{},\"reason\":\"{}\",\"error\":", r.index, r.reason).as_bytes());
        json::write_str(&mut out, &r.message);
        let (path, content_type) = match &r.raw {
            Raw::OtlpProtobuf(_) => ("/v1/logs", "application/x-protobuf"),
            Raw::OtlpJson(_) => ("/v1/logs", "application/json"),
            Raw::Metrics(_) => ("/v1/metrics", "application/json"),
        };
        out.extend_from_slice(format!(",\"path\":\"{path}\",\"content_type\":\"{content_type}\",").as_bytes());
        match &r.raw {
            Raw::OtlpProtobuf(b) => {
                out.extend_from_slice(b"\"body_base64\":\"");
                out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(b).as_bytes());
                out.push(b'"');
            }
            // Both are JSON documents we produced from parsed JSON: embedded as they are.
            Raw::OtlpJson(b) | Raw::Metrics(b) => {
                out.extend_from_slice(b"\"body\":");
                out.extend_from_slice(b);
            }
        }
        out.extend_from_slice(b"}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_with_everything_needed_to_post_again() {
        let records = [
            Rejected {
                index: 3,
                reason: RejectReason::MissingField,
                message: "attribute `cu` (u64) is \"missing\"".into(),
                raw: Raw::OtlpProtobuf(vec![0x0a, 0x00, 0xff]),
            },
            Rejected {
                index: 0,
                reason: RejectReason::BadTime,
                message: "x".into(),
                raw: Raw::Metrics(br#"{"app":"scope","events":[{"type":"t"}]}"#.to_vec()),
            },
        ];
        let text = encode(Timestamp::from_micros(0), "lava", &records);
        let lines: Vec<serde_json::Value> = text
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(lines[0]["reason"], "missing_field");
        assert_eq!(lines[0]["key"], "lava");
        assert_eq!(lines[0]["index"], 3);
        assert_eq!(lines[0]["error"], "attribute `cu` (u64) is \"missing\"");
        assert_eq!(lines[0]["body_base64"], "CgD/");
        assert_eq!(lines[0]["content_type"], "application/x-protobuf");
        assert_eq!(lines[1]["path"], "/v1/metrics");
        assert_eq!(lines[1]["body"]["events"][0]["type"], "t");
    }
}
