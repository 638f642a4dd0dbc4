//! `usage tap` and `usage top` against a running `usage gateway` with a separate
//! admin listener: the tap shows only what was asked for, top shows the exporters'
//! rates and counts, and ingest no longer serves the admin routes.

mod common;

use common::{free_port, post_json, record, start_gateway, text, usage_cmd};
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A gateway with an admin listener and two exporters: `all` takes every kind,
/// `relays` only relay_usage; gpu_seconds is a kind the gateway infers. (ingest port, admin port, process).
fn gateway(dir: &Path) -> (u16, u16, common::Running) {
    let (port, admin) = (free_port(), free_port());
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[pipeline]\nflush_interval = \"20ms\"\ndata_dir = {data:?}\n[gateway]\nlisten = \"127.0.0.1:{port}\"\n\
             admin_listen = \"127.0.0.1:{admin}\"\nallow_unknown_kinds = true\n[[gateway.keys]]\nkey = \"k1\"\nname = \"ops\"\n\
             [exporters.all]\ntype = \"file\"\npath = {all:?}\n\
             [exporters.relays]\ntype = \"file\"\npath = {relays:?}\nevents = [\"relay_usage\"]\n",
            data = dir.join("data").display().to_string(),
            all = dir.join("all").display().to_string(),
            relays = dir.join("relays").display().to_string(),
        ),
    )
    .unwrap();
    let running = start_gateway(&config, port);
    let end = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", admin)).is_err() {
        assert!(Instant::now() < end, "no admin listener on {admin}");
        std::thread::sleep(Duration::from_millis(20));
    }
    (port, admin, running)
}

/// One request with `relays` relay_usage records (cu = serial) and `samples`
/// gpu_seconds records.
fn send(port: u16, serial: &mut u64, relays: usize, samples: usize) {
    let mut records = Vec::new();
    for _ in 0..relays {
        *serial += 1;
        records.push(record(
            "relay_usage",
            &format!(
                r#"{{"key":"project","value":{{"stringValue":"p"}}}},{{"key":"chain","value":{{"stringValue":"c"}}}},{{"key":"cu","value":{{"intValue":"{serial}"}}}}"#
            ),
        ));
    }
    for _ in 0..samples {
        *serial += 1;
        records.push(record(
            "gpu_seconds",
            &format!(r#"{{"key":"provider","value":{{"stringValue":"prov"}}}},{{"key":"serial","value":{{"intValue":"{serial}"}}}}"#),
        ));
    }
    let body = format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
        records.join(",")
    );
    let (status, answer) = post_json(port, "/v1/logs", &body);
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn tap_shows_a_live_sample_filtered_by_kind_and_exporter() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin, _gw) = gateway(dir.path());
    let admin_addr = format!("127.0.0.1:{admin}");
    let mut tap = usage_cmd(
        dir.path(),
        &[
            "tap",
            "--admin",
            &admin_addr,
            "--exporter",
            "relays",
            "--limit",
            "3",
            "--duration",
            "30s",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // The tap shows what is accepted after it subscribed: send until it has its 3.
    let mut serial = 0;
    let end = Instant::now() + Duration::from_secs(30);
    while tap.try_wait().unwrap().is_none() {
        assert!(Instant::now() < end, "the tap never received 3 events");
        send(port, &mut serial, 1, 5);
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    tap.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(tap.wait().unwrap().success());
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{out}");
    for l in &lines {
        // gpu_seconds never goes to `relays`: only relay_usage passes the filter.
        assert_eq!(l["kind"], "relay_usage", "{l}");
        assert_eq!(l["exporters"], serde_json::json!(["all", "relays"]), "{l}");
        assert_eq!(l["key"], "ops");
        assert_eq!(l["event"]["project"], "p", "{l}");
    }
    let bad = usage_cmd(dir.path(), &["tap", "--admin", &admin_addr, "--exporter", "nope"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad)
            .1
            .contains("no exporter named \"nope\"; the gateway has: all, relays"),
        "{}",
        text(&bad).1
    );
}

#[test]
fn top_prints_each_exporters_rates_and_counts_and_ingest_keeps_admin_routes_apart() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin, _gw) = gateway(dir.path());
    let mut serial = 0;
    send(port, &mut serial, 40, 10);
    // Delivered before top looks: the file exporters flush every 20 ms.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, metrics) = common::get(admin, "/metrics");
        if metrics.contains("usage_exporter_exported_events_total{exporter=\"all\",type=\"file\"} 50") {
            break;
        }
        assert!(Instant::now() < end, "not delivered: {metrics}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let top = usage_cmd(
        dir.path(),
        &[
            "top",
            "--admin",
            &format!("127.0.0.1:{admin}"),
            "--interval",
            "200ms",
            "--iterations",
            "2",
        ],
    )
    .output()
    .unwrap();
    let (out, err) = text(&top);
    assert!(top.status.success(), "{err}");
    let tables: Vec<&str> = out.split("gateway: ").filter(|t| !t.is_empty()).collect();
    assert_eq!(tables.len(), 2, "{out}");
    let row = |name: &str| {
        tables[1]
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name}: {out}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // exporter, events/s, exported, queued/max, lag, dropped, failed, dead, retries, state
    let all = row("all");
    assert_eq!(
        (all[2].as_str(), all[5].as_str(), all[9].as_str()),
        ("50", "0", "ok"),
        "{out}"
    );
    assert_eq!(row("relays")[2], "40", "{out}");
    // The admin routes are on the admin listener only; health stays on ingest.
    assert_eq!(common::get(port, "/metrics").0, 404);
    assert_eq!(common::get(port, "/healthz").0, 200);
    assert_eq!(common::get(admin, "/healthz").0, 200);
    let down = usage_cmd(dir.path(), &["top", "--admin", "127.0.0.1:1", "--iterations", "1"])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(
        text(&down)
            .1
            .contains("cannot reach the gateway at http://127.0.0.1:1/metrics"),
        "{}",
        text(&down).1
    );
}
