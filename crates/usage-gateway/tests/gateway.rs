//! The gateway's HTTP contract, against the real router on a local port.

mod common;

use common::{batch, relays, request, request_declaring, serve};

use flate2::write::GzEncoder;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use usage_core::{Event, NetworkEvent, RelayUsage, Resource, UsageConfig};
use usage_gateway::Gateway;

async fn start(dir: &std::path::Path) -> (String, Arc<Gateway>) {
    usage_core::link_exporters!(usage_file);
    let toml = format!(
        r#"
        [pipeline]
        flush_interval = "20ms"
        data_dir = "{d}/data"
        [spool]
        path = "{d}/spool"
        [gateway]
        max_events = 500
        max_body = "1MiB"
        [[gateway.keys]]
        key = "admin-key"
        name = "admin"
        [[gateway.keys]]
        key = "acme-key"
        name = "acme"
        project = "acme"
        rate_limit = 50.0
        burst = 60.0
        [exporters.out]
        type = "file"
        path = "{d}/out"
        "#,
        d = dir.display()
    );
    let gw = Gateway::new(&UsageConfig::from_toml(&toml).unwrap()).unwrap();
    (serve(&gw).await, gw)
}

fn stored(dir: &std::path::Path) -> Vec<Event> {
    let mut out = Vec::new();
    usage_file::read::scan(&dir.join("out"), &Default::default(), |e| out.push(e)).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_valid_batches_durably_and_dedups_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, gw) = start(dir.path()).await;
    let sent = relays("acme", 20);
    let body = batch(&sent);
    let auth = [
        ("authorization", "Bearer admin-key"),
        ("idempotency-key", "b-1"),
        ("content-type", "application/json"),
    ];
    let r = request(&addr, "POST", "/v1/metrics", &auth, &body).await;
    assert_eq!((r.status, r.body.as_str()), (200, "{\"accepted\":20,\"rejected\":[]}"));
    // With a spool, 200 means durable: the events are in the spool already.
    assert!(gw.pipeline().stats().spool.unwrap().next_seq >= 20);
    // The same batch again: acknowledged, not forwarded twice.
    let r = request(&addr, "POST", "/v1/metrics", &auth, &body).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("\"duplicate\":true"), "{}", r.body);
    // gzip works too.
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&batch(&[Event::new(NetworkEvent::default())])).unwrap();
    let r = request(
        &addr,
        "POST",
        "/v1/metrics",
        &[("authorization", "Bearer admin-key"), ("content-encoding", "gzip")],
        &gz.finish().unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // And zstd, as a Collector's `compression: zstd` sends.
    let zstd = zstd::encode_all(&batch(&[Event::new(NetworkEvent::default())])[..], 3).unwrap();
    let r = request(
        &addr,
        "POST",
        "/v1/metrics",
        &[("authorization", "Bearer admin-key"), ("content-encoding", "zstd")],
        &zstd,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    gw.pipeline().flush(Duration::from_secs(10)).await.unwrap();
    let got = stored(dir.path());
    assert_eq!(got.len(), 22, "20 relays once, plus two network events");
    let ids: std::collections::HashSet<_> = got.iter().map(|e| e.id()).collect();
    assert!(sent.iter().all(|e| ids.contains(&e.id())), "ids are kept end to end");
    assert_eq!(
        got[0].resource().unwrap().service_name,
        "client",
        "the sender's resource is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_with_a_status_and_a_message_that_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _gw) = start(dir.path()).await;
    let ok = batch(&relays("acme", 1));
    let r = request(&addr, "POST", "/v1/metrics", &[], &ok).await;
    assert_eq!(r.status, 401);
    let r = request(&addr, "POST", "/v1/metrics", &[("authorization", "Bearer wrong")], &ok).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (401, "{\"error\":\"missing or invalid bearer key\"}")
    );

    let mut v: serde_json::Value = serde_json::from_slice(&batch(&relays("acme", 2))).unwrap();
    v["events"][1]["cu"] = serde_json::json!("ten");
    let r = request(
        &addr,
        "POST",
        "/v1/metrics",
        &[("authorization", "Bearer admin-key")],
        v.to_string().as_bytes(),
    )
    .await;
    // One bad event costs only itself: its neighbour is accepted, it is kept and named.
    assert_eq!(r.status, 200);
    let answer: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(answer["accepted"], 1, "{}", r.body);
    assert_eq!(answer["rejected"][0]["index"], 1);
    assert_eq!(answer["rejected"][0]["reason"], "wrong_type");
    assert_eq!(
        answer["rejected"][0]["error"],
        "events[1]: field `cu` of kind `relay_usage` must be u64, got a string"
    );
    v["events"][1]["cu"] = serde_json::json!(1);
    v["events"][1].as_object_mut().unwrap().remove("id");
    let r = request(
        &addr,
        "POST",
        "/v1/metrics",
        &[("authorization", "Bearer admin-key")],
        v.to_string().as_bytes(),
    )
    .await;
    // No id: one derived from the event's bytes, not a refusal.
    assert_eq!((r.status, r.body.as_str()), (200, "{\"accepted\":2,\"rejected\":[]}"));
    let r = request(
        &addr,
        "POST",
        "/v1/metrics",
        &[("authorization", "Bearer admin-key")],
        b"{\"evts\":[]}",
    )
    .await;
    assert!(
        r.status == 400 && r.body.contains("expected {\\\"events\\\": [...]}"),
        "{}",
        r.body
    );

    let r = request(
        &addr,
        "POST",
        "/v1/metrics",
        &[("authorization", "Bearer acme-key")],
        &batch(&relays("globex", 1)),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("\"accepted\":0")
            && r.body.contains("\"reason\":\"project\"")
            && r.body
                .contains("events[0].project: this key is bound to project `acme`, got `globex`"),
        "{}",
        r.body
    );

    let r = request(
        &addr,
        "POST",
        "/v1/metrics",
        &[("authorization", "Bearer admin-key")],
        &batch(&relays("acme", 501)),
    )
    .await;
    assert!(
        r.status == 413 && r.body.contains("more than the limit of 500"),
        "{} {}",
        r.status,
        r.body
    );
    let r = request(
        &addr,
        "POST",
        "/v1/metrics",
        &[("authorization", "Bearer admin-key"), ("content-encoding", "br")],
        &ok,
    )
    .await;
    assert_eq!(r.status, 415);
    let r = request_declaring(
        &addr,
        "/v1/metrics",
        &[("authorization", "Bearer admin-key")],
        (1 << 20) + 1,
    )
    .await;
    assert_eq!(r.status, 413, "over max_body");
    assert!(r.headers.contains("content-type: application/json"), "{}", r.headers);
    assert!(r.body.contains("gateway.max_body"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_gets_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _gw) = start(dir.path()).await;
    let auth = [("authorization", "Bearer acme-key")];
    let r = request(&addr, "POST", "/v1/metrics", &auth, &batch(&relays("acme", 60))).await;
    assert_eq!(r.status, 200, "the burst");
    let r = request(&addr, "POST", "/v1/metrics", &auth, &batch(&relays("acme", 50))).await;
    assert_eq!(r.status, 429);
    assert!(r.headers.contains("retry-after: 1"), "{}", r.headers);
    // Other keys are not affected.
    let r = request(
        &addr,
        "POST",
        "/v1/metrics",
        &[("authorization", "Bearer admin-key")],
        &batch(&relays("x", 50)),
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_prometheus_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _gw) = start(dir.path()).await;
    assert_eq!(request(&addr, "GET", "/healthz", &[], b"").await.status, 200);
    let r = request(&addr, "GET", "/readyz", &[], b"").await;
    assert!(r.status == 200 && r.body.contains("\"ready\":true"), "{}", r.body);
    request(
        &addr,
        "POST",
        "/v1/metrics",
        &[("authorization", "Bearer admin-key")],
        &batch(&relays("a", 3)),
    )
    .await;
    request(&addr, "POST", "/v1/metrics", &[("authorization", "Bearer nope")], b"{}").await;
    let m = request(&addr, "GET", "/metrics", &[], b"").await.body;
    for line in [
        "usage_gateway_received_events_total 3",
        "usage_gateway_forwarded_events_total 3",
        "usage_gateway_rejected_requests_total{reason=\"unauthorized\"} 1",
        "usage_exporter_exported_events_total{exporter=\"out\",type=\"file\"}",
        "usage_spool_bytes",
    ] {
        assert!(m.contains(line), "missing {line:?} in\n{m}");
    }
}

/// Events of every built-in kind, with the awkward values (maps, quotes, newlines, unicode).
fn varied(n: u64) -> Vec<Event> {
    (0..n)
        .map(|i| match i % 3 {
            0 => Event::new(RelayUsage {
                project: "acme".into(),
                chain: "ETH1".into(),
                cu: i * 10 + 1,
                latency_ms: i,
                success: i % 2 == 0,
                provider: "lava@prov\u{e9}der \"1\"\nx".into(),
                ..Default::default()
            }),
            1 => Event::new(usage_core::OptimizerQos {
                provider: format!("p{i}").into(),
                epoch: i64::MAX - i as i64,
                selection_latency: 0.1 + i as f64,
                ..Default::default()
            }),
            _ => Event::new(NetworkEvent {
                event_type: "stream_started".into(),
                stream_id: format!("s{i}").into(),
                // Sorted by key: the receiver rebuilds maps in key order.
                attributes: vec![("codec".into(), "h264".into()), ("z\"\n".into(), "v\u{263a}".into())],
                ..Default::default()
            }),
        })
        .collect()
}

async fn otlp_round_trip(protocol: &str) {
    usage_core::link_exporters!(usage_otlp);
    let dir = tempfile::tempdir().unwrap();
    let (addr, gw) = start(dir.path()).await;
    let toml = format!(
        "[pipeline]\nservice_name = \"relay\"\nservice_instance_id = \"relay-7\"\nflush_interval = \"20ms\"\n\
         data_dir = {data:?}\n[exporters.otel]\ntype = \"otlp\"\nendpoint = \"http://{addr}\"\nprotocol = {protocol:?}\n\
         batch_max_events = 7\n[exporters.otel.headers]\nauthorization = \"Bearer admin-key\"\n",
        data = dir.path().join("client").display().to_string(),
    );
    let client = usage_core::Pipeline::from_config(&UsageConfig::from_toml(&toml).unwrap()).unwrap();
    let sent = varied(60);
    for e in &sent {
        client.sink().emit(e.clone());
    }
    let report = client.shutdown(Duration::from_secs(20)).await.unwrap();
    assert_eq!(report.exporter("otel").unwrap().delivered, 60, "{report:?}");
    gw.pipeline().flush(Duration::from_secs(10)).await.unwrap();
    let mut got = stored(dir.path());
    assert_eq!(got.len(), sent.len());
    got.sort_by_key(|e| e.id());
    let mut want = sent.clone();
    want.sort_by_key(|e| e.id());
    for (g, w) in got.iter().zip(&want) {
        let res = g.resource().expect("a resource").clone();
        assert_eq!(
            (res.service_name.as_ref(), res.service_instance_id.as_ref()),
            ("relay", "relay-7")
        );
        assert_eq!(
            &g.clone().with_resource(Arc::new(Resource::default())),
            &w.clone().with_resource(Arc::new(Resource::default())),
            "{protocol}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_exporter_to_gateway_logs_gives_back_identical_events_protobuf() {
    otlp_round_trip("http/protobuf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_exporter_to_gateway_logs_gives_back_identical_events_json() {
    otlp_round_trip("http/json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_logs_errors_name_the_record_and_attribute() {
    use usage_otlp::opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    let dir = tempfile::tempdir().unwrap();
    let (addr, _gw) = start(dir.path()).await;
    let auth = [
        ("authorization", "Bearer admin-key"),
        ("content-type", "application/json"),
    ];
    let record = |body: &str, attrs: &str| {
        format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"timeUnixNano":"1","body":{body},"attributes":[{attrs}]}}]}}]}}]}}"#
        )
    };
    let cases = [
        (
            record(r#"{"intValue":"3"}"#, ""),
            200,
            "logRecords[0]: the body must be the event kind as a string, or event_name must name it",
        ),
        (
            record(r#"{"stringValue":"nope"}"#, ""),
            200,
            "logRecords[0]: unknown event kind `nope`",
        ),
        (
            record(
                r#"{"stringValue":"relay_usage"}"#,
                r#"{"key":"project","value":{"boolValue":true}},{"key":"chain","value":{"doubleValue":1.5}}"#,
            ),
            200,
            "logRecords[0]: attribute `chain` must be string, got a double",
        ),
        (
            record(r#"{"stringValue":"relay_usage"}"#, ""),
            200,
            "logRecords[0]: attribute `project` (string) is missing",
        ),
        ("{not json".to_string(), 400, "body: invalid OTLP/JSON"),
    ];
    for (body, status, needle) in cases {
        let r = request(&addr, "POST", "/v1/logs", &auth, body.as_bytes()).await;
        assert_eq!(r.status, status, "{body} -> {}", r.body);
        assert!(r.body.contains(needle), "{body} -> {}", r.body);
        if status == 200 {
            // OTLP's answer for records it did not take.
            assert!(r.body.contains("\"rejectedLogRecords\":1"), "{}", r.body);
        }
    }
    let r = request(
        &addr,
        "POST",
        "/v1/logs",
        &[("content-type", "application/x-protobuf")],
        b"",
    )
    .await;
    assert_eq!(r.status, 401, "keys guard /v1/logs too");
    let r = request(
        &addr,
        "POST",
        "/v1/logs",
        &[
            ("authorization", "Bearer admin-key"),
            ("content-type", "application/x-protobuf"),
        ],
        b"\xff\xff",
    )
    .await;
    assert!(
        r.status == 400 && r.body.contains("invalid OTLP protobuf"),
        "{}",
        r.body
    );
    // An empty request is valid and answers an OTLP response (what health probes send).
    let empty = prost::Message::encode_to_vec(&ExportLogsServiceRequest::default());
    let r = request(
        &addr,
        "POST",
        "/v1/logs",
        &[
            ("authorization", "Bearer admin-key"),
            ("content-type", "application/x-protobuf"),
        ],
        &empty,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// The admin listener has its own connections: with every ingest connection taken,
/// health and metrics still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_answers_while_ingest_connections_are_exhausted() {
    usage_core::link_exporters!(usage_file);
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[pipeline]\ndata_dir = \"{d}/data\"\n[gateway]\nmax_connections = 2\n\
         [[gateway.keys]]\nkey = \"k\"\n[exporters.out]\ntype = \"file\"\npath = \"{d}/out\"\n",
        d = dir.path().display()
    );
    let gw = Gateway::new(&UsageConfig::from_toml(&toml).unwrap()).unwrap();
    let ingest = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (ingest_addr, admin_addr) = (
        ingest.local_addr().unwrap().to_string(),
        admin.local_addr().unwrap().to_string(),
    );
    let listeners = usage_gateway::Listeners {
        ingest,
        otlp_grpc: None,
        admin: Some(admin),
    };
    tokio::spawn(usage_gateway::serve_on(
        gw,
        listeners,
        std::future::pending(),
        Duration::ZERO,
    ));
    let _held = hold_two(&ingest_addr).await;
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        request(&admin_addr, "GET", "/metrics", &[], b""),
    )
    .await
    .expect("the admin listener answers");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("usage_gateway_received_events_total"));
    // A third ingest client waits in the backlog: no answer within a second.
    let waiting = tokio::time::timeout(
        Duration::from_secs(1),
        request(&ingest_addr, "GET", "/healthz", &[], b""),
    )
    .await;
    assert!(waiting.is_err(), "ingest is saturated");
}

/// Two keep-alive connections that each got an answer: both hold an ingest slot.
async fn hold_two(addr: &str) -> Vec<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 512];
        while !seen.ends_with(b"ok\n") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "the connection was closed");
            seen.extend_from_slice(&buf[..n]);
        }
        held.push(s);
    }
    held
}
