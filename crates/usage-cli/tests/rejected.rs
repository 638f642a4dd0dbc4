//! `usage gateway` keeps what it refuses; `usage rejected` lists and replays it once
//! the operator fixed the cause (here: the kind was unknown, then allowed).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{free_port, post_json, record, start_gateway, Running};

fn gateway(dir: &Path, port: u16, allow_unknown: bool) -> Running {
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[pipeline]\nflush_interval = \"20ms\"\ndata_dir = {data:?}\n[gateway]\nlisten = \"127.0.0.1:{port}\"\n\
             allow_unknown_kinds = {allow_unknown}\n[[gateway.keys]]\nkey = \"k1\"\nname = \"ops\"\n\
             [exporters.out]\ntype = \"file\"\npath = {out:?}\n",
            data = dir.join("data").display().to_string(),
            out = dir.join("out").display().to_string(),
        ),
    )
    .unwrap();
    start_gateway(&config, port)
}

#[test]
fn refused_records_are_kept_listed_and_replayed_after_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let relay = record(
        "relay_usage",
        r#"{"key":"project","value":{"stringValue":"p"}},{"key":"chain","value":{"stringValue":"c"}},{"key":"cu","value":{"intValue":"5"}}"#,
    );
    let gpu = record("gpu_seconds", r#"{"key":"seconds","value":{"doubleValue":2.5}}"#);
    let body = format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{relay},{gpu}]}}]}}]}}"#);
    {
        let _g = gateway(dir.path(), port, false);
        let (status, answer) = post_json(port, "/v1/logs", &body);
        assert_eq!(status, 200, "{answer}");
        assert!(answer.contains(r#""rejectedLogRecords":1"#), "{answer}");
        assert!(answer.contains("unknown event kind `gpu_seconds`"), "{answer}");
    }
    let rejected = dir.path().join("data/rejected");
    let o = Command::new(env!("CARGO_BIN_EXE_usage"))
        .args(["rejected", "list", &rejected.display().to_string()])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && listing.contains("ops") && listing.contains("unknown_kind"),
        "{listing}"
    );

    let _g = gateway(dir.path(), port, true);
    let o = Command::new(env!("CARGO_BIN_EXE_usage"))
        .args([
            "rejected",
            "replay",
            &rejected.display().to_string(),
            "--url",
            &format!("http://127.0.0.1:{port}"),
        ])
        .env("USAGE_GATEWAY_KEY", "k1")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out} {}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("replayed 1 records from 1 files; 1 accepted, 0 refused again"),
        "{out}"
    );
    let left: Vec<_> = std::fs::read_dir(&rejected)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.iter().all(|n| n.ends_with(".replayed")), "{left:?}");
    // The replayed record arrived next to the relay accepted the first time.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let mut kinds = Vec::new();
        let _ = usage_file::read::scan(&dir.path().join("out"), &Default::default(), |e| {
            kinds.push(e.kind().to_string())
        });
        kinds.sort();
        if kinds == ["gpu_seconds", "relay_usage"] {
            break;
        }
        assert!(Instant::now() < end, "delivered: {kinds:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
