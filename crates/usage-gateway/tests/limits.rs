//! What a client cannot make the gateway spend: bodies read only after the key,
//! within max_body and body_timeout, inflated no further than max_inflated_body;
//! request heads within header_timeout; at most max_in_flight requests at once and
//! max_connections connections. Every refusal is JSON and counted under a reason.

mod common;

use common::{batch, relays, request, request_declaring, serve, Reply};
use flate2::write::GzEncoder;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use usage_core::UsageConfig;
use usage_gateway::Gateway;

async fn start(dir: &std::path::Path, limits: &str) -> (String, Arc<Gateway>) {
    usage_core::link_exporters!(usage_file);
    let toml = format!(
        "[pipeline]\nflush_interval = \"20ms\"\ndata_dir = \"{d}/data\"\n[spool]\npath = \"{d}/spool\"\n\
         [gateway]\nmax_body = \"1MiB\"\n{inflated}{limits}\n\
         [[gateway.keys]]\nkey = \"k\"\n[exporters.out]\ntype = \"file\"\npath = \"{d}/out\"\n",
        d = dir.display(),
        inflated = if limits.contains("max_inflated_body") {
            ""
        } else {
            "max_inflated_body = \"2MiB\"\n"
        },
    );
    let gw = Gateway::new(&UsageConfig::from_toml(&toml).unwrap()).unwrap();
    (serve(&gw).await, gw)
}

/// `usage_gateway_rejected_requests_total{reason="<reason>"}` from /metrics.
async fn rejected(addr: &str, reason: &str) -> u64 {
    let m = request(addr, "GET", "/metrics", &[], b"").await.body;
    let prefix = format!("usage_gateway_rejected_requests_total{{reason=\"{reason}\"}} ");
    m.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in /metrics"))
}

fn assert_json_error(r: &Reply, status: u16, names: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert!(r.headers.contains("content-type: application/json"), "{}", r.headers);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body));
    let message = v["error"].as_str().unwrap_or_default();
    assert!(message.contains(names), "{message:?} names {names:?}");
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 19).unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// A request whose body is sent chunked (no length declared up front); the body is
/// sent whole but not ended, so a gateway that stops reading at its limit has read
/// every byte sent (no reset loses its answer).
async fn chunked(addr: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut head = format!("POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    for part in body.chunks(64 << 10) {
        let framed = [format!("{:x}\r\n", part.len()).as_bytes(), part, b"\r\n"].concat();
        s.write_all(&framed).await.unwrap();
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

const KEY: (&str, &str) = ("authorization", "Bearer k");
const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_json_and_counted_under_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _gw) = start(dir.path(), "").await;
    let ok = batch(&relays("acme", 2));
    let over = vec![b' '; (1 << 20) + 1];
    // A gzip bomb: 3 MiB of zeros inflating past the 2 MiB limit from a few KiB.
    let bomb = gzip(&[b'0'; 3 << 20]);
    assert!(bomb.len() < 1 << 20);
    for _ in 0..3 {
        let r = request_declaring(&addr, "/v1/metrics", &[KEY, JSON], over.len()).await;
        assert_json_error(&r, 413, "gateway.max_body");
        assert_eq!(chunked(&addr, "/v1/metrics", &[KEY, JSON], &over).await, 413);
        let r = request(
            &addr,
            "POST",
            "/v1/metrics",
            &[KEY, ("content-encoding", "gzip")],
            &bomb,
        )
        .await;
        assert_json_error(&r, 413, "gateway.max_inflated_body");
        let r = request(
            &addr,
            "POST",
            "/v1/logs",
            &[
                KEY,
                ("content-type", "application/x-protobuf"),
                ("content-encoding", "gzip"),
            ],
            &bomb,
        )
        .await;
        assert_json_error(&r, 413, "gateway.max_inflated_body");
        // The same bomb as zstd.
        let r = request(
            &addr,
            "POST",
            "/v1/metrics",
            &[KEY, ("content-encoding", "zstd")],
            &zstd(&[b'0'; 3 << 20]),
        )
        .await;
        assert_json_error(&r, 413, "gateway.max_inflated_body");
    }
    assert_eq!(rejected(&addr, "too_large").await, 15);
    for _ in 0..2 {
        let r = request(
            &addr,
            "POST",
            "/v1/metrics",
            &[KEY, ("content-encoding", "gzip")],
            b"not gzip",
        )
        .await;
        assert_json_error(&r, 400, "invalid gzip");
        let r = request(
            &addr,
            "POST",
            "/v1/metrics",
            &[KEY, ("content-encoding", "zstd")],
            b"not zstd",
        )
        .await;
        assert_json_error(&r, 400, "invalid zstd");
    }
    assert_eq!(rejected(&addr, "invalid").await, 4);
    let r = request(&addr, "POST", "/v1/metrics", &[KEY, ("content-encoding", "br")], &ok).await;
    assert_json_error(&r, 415, "content-encoding \"br\"");
    let r = request(
        &addr,
        "POST",
        "/v1/metrics",
        &[KEY, ("content-type", "text/plain")],
        &ok,
    )
    .await;
    assert_json_error(&r, 415, "application/json");
    let r = request(&addr, "POST", "/v1/logs", &[KEY, ("content-type", "text/plain")], &ok).await;
    assert_json_error(&r, 415, "application/x-protobuf");
    assert_eq!(rejected(&addr, "unsupported").await, 3);
    let r = request(&addr, "POST", "/v1/metrics", &[], &ok).await;
    assert_json_error(&r, 401, "bearer key");
    assert!(r.headers.contains("www-authenticate: bearer"), "{}", r.headers);
    assert_eq!(rejected(&addr, "unauthorized").await, 1);
    // A wrong path or method is JSON too.
    assert_json_error(&request(&addr, "GET", "/nope", &[], b"").await, 404, "no such route");
    assert_json_error(
        &request(&addr, "GET", "/v1/metrics", &[KEY], b"").await,
        405,
        "not allowed",
    );
    // And a good request still works on the same gateway.
    let r = request(&addr, "POST", "/v1/metrics", &[KEY], &ok).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_is_read_only_after_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _gw) = start(dir.path(), "body_timeout = \"20s\"").await;
    // Declares a large body and sends none of it: a gateway reading bodies before
    // the key would wait for it (and time out); this one answers at once.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /v1/metrics HTTP/1.1\r\nhost: x\r\nauthorization: Bearer nope\r\ncontent-type: application/json\r\ncontent-length: 900000\r\n\r\n")
        .await
        .unwrap();
    let mut out = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut out))
        .await
        .expect("answered without the body")
        .unwrap();
    let head = String::from_utf8_lossy(&out[..n]);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_and_bodies_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _gw) = start(dir.path(), "header_timeout = \"500ms\"\nbody_timeout = \"500ms\"").await;
    // Half a head, then nothing: the connection is closed.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /v1/metrics HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("a slow head is cut off")
        .ok();
    assert!(started.elapsed() < Duration::from_secs(10));
    // A whole head, part of the body, then nothing: 408, counted.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /v1/metrics HTTP/1.1\r\nhost: x\r\nauthorization: Bearer k\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"events\":")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("a slow body is answered")
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("gateway.body_timeout"), "{text}");
    assert_eq!(rejected(&addr, "timeout").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_max_in_flight_wait_then_get_503() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _gw) = start(
        dir.path(),
        "max_in_flight = 1\naccept_timeout = \"500ms\"\nbody_timeout = \"30s\"",
    )
    .await;
    let body = batch(&relays("acme", 3));
    // The first request holds the only slot while its body trickles in.
    let mut first = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Bearer k\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    first.write_all(head.as_bytes()).await.unwrap();
    first.write_all(&body[..5]).await.unwrap();
    // Wait until the gateway holds the first request's slot: a second request is
    // then refused after accept_timeout rather than served.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let r = request(&addr, "POST", "/v1/metrics", &[KEY], &body).await;
        if r.status == 503 {
            assert_json_error(&r, 503, "gateway.max_in_flight");
            assert!(r.headers.contains("retry-after: 1"), "{}", r.headers);
            break;
        }
        assert!(Instant::now() < end, "never refused: {} {}", r.status, r.body);
    }
    assert!(rejected(&addr, "overloaded").await >= 1);
    first.write_all(&body[5..]).await.unwrap();
    let mut out = Vec::new();
    first.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_connections_wait_for_a_free_one() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _gw) = start(dir.path(), "max_connections = 2\nheader_timeout = \"30s\"").await;
    let idle_a = TcpStream::connect(&addr).await.unwrap();
    let _idle_b = TcpStream::connect(&addr).await.unwrap();
    let mut third = TcpStream::connect(&addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = vec![0u8; 1024];
    let waited = tokio::time::timeout(Duration::from_millis(300), third.read(&mut out)).await;
    assert!(waited.is_err(), "served while two connections were open");
    drop(idle_a);
    let n = tokio::time::timeout(Duration::from_secs(10), third.read(&mut out))
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert!(String::from_utf8_lossy(&out[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_too_large_for_a_spool_record_is_refused_alone() {
    // Review M7: whatever the limits allow, an event the spool would read back as
    // damage is refused (and kept) instead of acknowledged.
    let dir = tempfile::tempdir().unwrap();
    let (addr, _gw) = start(
        dir.path(),
        "max_inflated_body = \"16MiB\"\nmax_string_bytes = \"12MiB\"\nmax_decode_bytes = \"64MiB\"",
    )
    .await;
    let big = "x".repeat(9 << 20);
    let body = format!(
        r#"{{"events":[{{"kind":"relay_usage","ts":"2026-12-01T00:00:00Z","project":"acme","chain":"ETH1","cu":1}},{{"kind":"relay_usage","ts":"2026-12-01T00:00:00Z","project":"acme","chain":"{big}","cu":2}}]}}"#
    );
    let r = request(
        &addr,
        "POST",
        "/v1/metrics",
        &[KEY, ("content-encoding", "gzip")],
        &gzip(body.as_bytes()),
    )
    .await;
    assert_eq!(r.status, 200, "{:.300}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["accepted"], 1, "{v}");
    assert_eq!(v["rejected"][0]["reason"], "too_large", "{v}");
}
