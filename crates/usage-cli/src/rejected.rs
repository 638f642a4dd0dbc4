//! `usage rejected list [DIR]` and `usage rejected replay [DIR] --url URL`: the records
//! the gateway refused and kept (docs/delivery.md, "Rejected records").

use crate::{Failure, Outcome};
use base64::Engine;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Subcommand)]
pub(crate) enum Command {
    /// Files, and refused records by key and reason. Changes nothing.
    List {
        /// The gateway's `rejected_dir` (default `usage-data/rejected`).
        dir: Option<PathBuf>,
    },
    /// Post every kept record to a gateway again; finished files become `*.replayed`.
    Replay {
        /// The gateway's `rejected_dir` (default `usage-data/rejected`).
        dir: Option<PathBuf>,
        /// The gateway, e.g. `http://127.0.0.1:8080`.
        #[arg(long)]
        url: String,
        /// Environment variable holding the bearer key (never a flag: flags show in `ps`).
        #[arg(long, default_value = "USAGE_GATEWAY_KEY")]
        key_env: String,
    },
}

pub(crate) fn run(cmd: Command) -> Outcome {
    match cmd {
        Command::List { dir } => list(&dir.unwrap_or_else(default_dir)),
        Command::Replay { dir, url, key_env } => replay(&dir.unwrap_or_else(default_dir), &url, &key_env),
    }
}

fn default_dir() -> PathBuf {
    PathBuf::from("usage-data/rejected")
}

/// One kept record.
struct Line {
    key: String,
    reason: String,
    path: String,
    content_type: String,
    body: Vec<u8>,
}

fn parse(text: &str, file: &Path) -> Result<Vec<Line>, Failure> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = || format!("{}:{}", file.display(), n + 1);
        let v: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| Failure::Failed(format!("{}: not a rejected-record line: {e}", at())))?;
        let field = |k: &str| v[k].as_str().map(str::to_string);
        let body = match (&v["body_base64"], &v["body"]) {
            (serde_json::Value::String(b), _) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| Failure::Failed(format!("{}: body_base64: {e}", at())))?,
            (_, serde_json::Value::Null) => return Err(Failure::Failed(format!("{}: no body", at()))),
            (_, b) => b.to_string().into_bytes(),
        };
        out.push(Line {
            key: field("key").unwrap_or_default(),
            reason: field("reason").unwrap_or_default(),
            path: field("path").ok_or_else(|| Failure::Failed(format!("{}: no path", at())))?,
            content_type: field("content_type").unwrap_or_else(|| "application/json".into()),
            body,
        });
    }
    Ok(out)
}

/// The files still to replay (`rejected-*.ndjson`), oldest first.
fn files(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    let entries = std::fs::read_dir(dir).map_err(|e| Failure::Usage(format!("{}: {e}", dir.display())))?;
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
        .collect();
    out.sort();
    Ok(out)
}

fn list(dir: &Path) -> Outcome {
    let files = files(dir)?;
    let mut by: BTreeMap<(String, String), usize> = BTreeMap::new();
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| Failure::Failed(format!("{}: {e}", f.display())))?;
        for l in parse(&text, f)? {
            *by.entry((l.key, l.reason)).or_default() += 1;
        }
    }
    println!("{}: {} files to replay", dir.display(), files.len());
    println!("  {:<20} {:<16} {:>8}", "key", "reason", "records");
    for ((key, reason), n) in &by {
        println!("  {key:<20} {reason:<16} {n:>8}");
    }
    Ok(())
}

fn replay(dir: &Path, url: &str, key_env: &str) -> Outcome {
    let key = std::env::var(key_env).map_err(|_| Failure::Usage(format!("{key_env} is not set (the gateway key)")))?;
    let files = files(dir)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Failed(format!("runtime: {e}")))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Failure::Failed(format!("http client: {e}")))?;
    let (mut sent, mut refused_again) = (0usize, 0usize);
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| Failure::Failed(format!("{}: {e}", f.display())))?;
        for line in parse(&text, f)? {
            let refused = rt.block_on(post(&client, url, &key, &line))?;
            sent += 1;
            refused_again += refused;
        }
        let done = f.with_extension("ndjson.replayed");
        std::fs::rename(f, &done).map_err(|e| Failure::Failed(format!("{}: {e}", f.display())))?;
    }
    println!(
        "replayed {sent} records from {} files; {} accepted, {refused_again} refused again (kept again by the gateway)",
        files.len(),
        sent - refused_again
    );
    Ok(())
}

/// Posts one record; returns how many the gateway refused again (0 or 1).
async fn post(client: &reqwest::Client, url: &str, key: &str, line: &Line) -> Result<usize, Failure> {
    let target = format!("{}{}", url.trim_end_matches('/'), line.path);
    let resp = client
        .post(&target)
        .bearer_auth(key)
        .header("content-type", &line.content_type)
        .body(line.body.clone())
        .send()
        .await
        .map_err(|e| Failure::Failed(format!("POST {target}: {e}")))?;
    let status = resp.status();
    let bytes = resp.bytes().await.unwrap_or_default();
    if status.as_u16() != 200 {
        let text = String::from_utf8_lossy(&bytes);
        return Err(Failure::Failed(format!(
            "POST {target} -> {status}: {} (stopped; files not yet replayed are kept)",
            text.trim()
        )));
    }
    Ok(refused_in(&line.content_type, &bytes))
}

/// Refused records in a 200 answer: `rejected` (JSON) or `partial_success` (OTLP).
fn refused_in(content_type: &str, body: &[u8]) -> usize {
    if content_type == "application/x-protobuf" {
        return protobuf_rejected(body);
    }
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    match (&v["rejected"], &v["partialSuccess"]["rejectedLogRecords"]) {
        (serde_json::Value::Array(a), _) => a.len(),
        (_, n) => n.as_u64().or_else(|| n.as_str()?.parse().ok()).unwrap_or(0) as usize,
    }
}

/// `ExportLogsServiceResponse.partial_success.rejected_log_records` (fields 1 and 1),
/// read from the wire; 0 when absent.
fn protobuf_rejected(body: &[u8]) -> usize {
    fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*at)?;
            *at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(v);
            }
        }
        None
    }
    let mut at = 0;
    if body.first() != Some(&0x0a) {
        return 0;
    }
    at += 1;
    let Some(len) = varint(body, &mut at) else { return 0 };
    let end = (at + len as usize).min(body.len());
    while at < end {
        let Some(tag) = varint(body, &mut at) else { return 0 };
        match (tag >> 3, tag & 7) {
            (1, 0) => return varint(body, &mut at).unwrap_or(0) as usize,
            (_, 0) => {
                varint(body, &mut at);
            }
            (_, 2) => {
                let Some(n) = varint(body, &mut at) else { return 0 };
                at += n as usize;
            }
            _ => return 0,
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_counts_from_both_answers() {
        // partial_success { rejected_log_records: 3, error_message: "x" }
        assert_eq!(protobuf_rejected(&[0x0a, 0x05, 0x08, 0x03, 0x12, 0x01, b'x']), 3);
        assert_eq!(
            protobuf_rejected(&[0x0a, 0x05, 0x12, 0x01, b'x', 0x08, 0x96, 0x01][..0]),
            0
        );
        assert_eq!(
            protobuf_rejected(&[0x0a, 0x06, 0x12, 0x01, b'x', 0x08, 0x96, 0x01]),
            150
        );
        assert_eq!(
            refused_in("application/json", br#"{"accepted":1,"rejected":[{"index":0}]}"#),
            1
        );
        assert_eq!(
            refused_in("application/json", br#"{"partialSuccess":{"rejectedLogRecords":"2"}}"#),
            2
        );
        assert_eq!(refused_in("application/json", b"{}"), 0);
    }

    #[test]
    fn lines_parse_back_into_requests() {
        let text = concat!(
            r#"{"key":"lava","reason":"missing_field","path":"/v1/logs","content_type":"application/x-protobuf","body_base64":"CgD/"}"#,
            "\n",
            r#"{"key":"dd","reason":"bad_time","path":"/v1/metrics","content_type":"application/json","body":{"events":[{"type":"t"}]}}"#,
            "\n"
        );
        let Ok(lines) = parse(text, Path::new("f")) else {
            panic!("lines parse")
        };
        assert_eq!(lines[0].body, [0x0a, 0x00, 0xff]);
        assert_eq!(lines[1].path, "/v1/metrics");
        assert_eq!(lines[1].body, br#"{"events":[{"type":"t"}]}"#);
        assert!(parse("{}", Path::new("f")).is_err());
    }
}
