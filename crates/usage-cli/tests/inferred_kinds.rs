//! A kind the gateway does not know gets a schema inferred per record
//! (`allow_unknown_kinds`), so one kind can arrive with several schemas. Each must
//! survive the spool: the events read back from it (here by `usage spool replay`,
//! as a lagging or restarted exporter would) are the events delivered live.

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::{free_port, post_json, record, start_gateway, text, usage};

/// Each delivered event under `dir` as `kind seconds=… region=…`, sorted.
fn delivered(dir: &Path) -> Vec<String> {
    let mut events = Vec::new();
    let _ = usage_file::read::scan(dir, &Default::default(), |e| {
        let field = |name| e.field(name).map(|v| format!("{v:?}"));
        events.push(format!(
            "{} seconds={:?} region={:?}",
            e.kind(),
            field("seconds"),
            field("region")
        ));
    });
    events.sort();
    events
}

#[test]
fn a_kind_with_varying_attributes_reads_back_from_the_spool_whole() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = |p: &str| dir.path().join(p).display().to_string();
    let spool = format!("[spool]\npath = {:?}\n", path("spool"));
    let gateway_toml = dir.path().join("gateway.toml");
    std::fs::write(
        &gateway_toml,
        format!(
            "[pipeline]\nflush_interval = \"20ms\"\ndata_dir = {:?}\n{spool}[gateway]\nlisten = \"127.0.0.1:{port}\"\n\
             allow_unknown_kinds = true\n[[gateway.keys]]\nkey = \"k1\"\n\
             [exporters.live]\ntype = \"file\"\npath = {:?}\n",
            path("data"),
            path("live"),
        ),
    )
    .unwrap();
    // Four records of one unknown kind, three attribute sets: three schemas.
    let records = [
        record("gpu_seconds", r#"{"key":"seconds","value":{"doubleValue":2.5}}"#),
        record(
            "gpu_seconds",
            r#"{"key":"seconds","value":{"doubleValue":1.5}},{"key":"region","value":{"stringValue":"eu"}}"#,
        ),
        record("gpu_seconds", r#"{"key":"region","value":{"stringValue":"us"}}"#),
        record("gpu_seconds", r#"{"key":"seconds","value":{"doubleValue":4.0}}"#),
    ];
    let body = format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
        records.join(",")
    );
    let live = {
        let _g = start_gateway(&gateway_toml, port);
        let (status, answer) = post_json(port, "/v1/logs", &body);
        assert_eq!(status, 200, "{answer}");
        assert!(!answer.contains("rejected"), "all four are accepted: {answer}");
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let live = delivered(&dir.path().join("live"));
            if live.len() == records.len() {
                break live;
            }
            assert!(Instant::now() < end, "delivered live: {live:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert!(
        live.iter().any(|e| e.contains(r#"region=Some("Str(\"eu\")")"#))
            && live.iter().any(|e| e.contains("seconds=None")),
        "each record keeps its own attributes: {live:?}"
    );

    std::fs::write(
        dir.path().join("usage.toml"),
        format!(
            "[pipeline]\ndata_dir = {:?}\n{spool}[exporters.copy]\ntype = \"file\"\npath = {:?}\n",
            path("replay-data"),
            path("copy"),
        ),
    )
    .unwrap();
    let o = usage(dir.path(), &["spool", "replay", "spool", "--exporter", "copy"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("replayed 4 events to copy"), "{out}{err}");
    assert_eq!(
        delivered(&dir.path().join("copy")),
        live,
        "read back from the spool, every schema's events are the live ones"
    );
}
