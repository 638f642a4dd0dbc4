//! Idempotency-Keys (review H5, M1) and what our own exporters meet at our gateway
//! (review M2): keys bounded and bound to their body, never stuck in progress when a
//! client goes away, and a batch over a key's burst is split (413), not refused forever.

mod common;

use common::{batch, relays, request, serve};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use usage_conformance::{Answer, FaultServer};
use usage_core::UsageConfig;
use usage_gateway::Gateway;

async fn start(dir: &std::path::Path, extra: &str) -> (String, Arc<Gateway>) {
    usage_core::link_exporters!(usage_file, usage_otlp);
    let toml = format!(
        "[pipeline]\nflush_interval = \"10ms\"\ndata_dir = \"{d}/data\"\n[gateway]\n\
         [[gateway.keys]]\nkey = \"k\"\n[[gateway.keys]]\nkey = \"small\"\nrate_limit = 5.0\nburst = 10.0\n{extra}",
        d = dir.display()
    );
    let gw = Gateway::new(&UsageConfig::from_toml(&toml).unwrap()).unwrap();
    (serve(&gw).await, gw)
}

fn file_exporter(dir: &std::path::Path) -> String {
    format!(
        "[spool]\npath = \"{d}/spool\"\n[exporters.out]\ntype = \"file\"\npath = \"{d}/out\"\n",
        d = dir.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_bounded_and_bound_to_their_body() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _gw) = start(dir.path(), &file_exporter(dir.path())).await;
    let body = batch(&relays("acme", 3));
    let long = "k".repeat(300);
    let r = request(
        &addr,
        "POST",
        "/v1/metrics",
        &[("authorization", "Bearer k"), ("idempotency-key", &long)],
        &body,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("Idempotency-Key"), "{}", r.body);
    let with_key = [("authorization", "Bearer k"), ("idempotency-key", "batch-1")];
    assert_eq!(
        request(&addr, "POST", "/v1/metrics", &with_key, &body).await.status,
        200
    );
    let again = request(&addr, "POST", "/v1/metrics", &with_key, &body).await;
    assert!(again.body.contains("\"duplicate\":true"), "{}", again.body);
    let other = request(&addr, "POST", "/v1/metrics", &with_key, &batch(&relays("acme", 4))).await;
    assert_eq!(other.status, 422, "the key names another batch: {}", other.body);
    // Another API key's same key is its own.
    let theirs = [("authorization", "Bearer small"), ("idempotency-key", "batch-1")];
    let r = request(&addr, "POST", "/v1/metrics", &theirs, &batch(&relays("acme", 4))).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_the_burst_is_too_large_not_throttled_forever() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _gw) = start(dir.path(), &file_exporter(dir.path())).await;
    let auth = [("authorization", "Bearer small")];
    let r = request(&addr, "POST", "/v1/metrics", &auth, &batch(&relays("acme", 11))).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains("burst of 10"), "{}", r.body);
    let r = request(&addr, "POST", "/v1/metrics", &auth, &batch(&relays("acme", 10))).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_leaves_no_key_stuck_in_progress() {
    // Without a spool a request waits for a slow collector; its client gives up.
    let collector = FaultServer::start(
        Arc::new(|_| Vec::new()),
        Arc::new(|n, _| match n {
            0 => Answer::Slow(Duration::from_secs(3)),
            _ => Answer::status(200),
        }),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (addr, gw) = start(
        dir.path(),
        &format!(
            "[exporters.up]\ntype = \"otlp\"\nendpoint = \"http://{}\"\ntimeout = \"10s\"\n",
            collector.addr
        ),
    )
    .await;
    let body = batch(&relays("acme", 2));
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/metrics HTTP/1.1\r\nhost: x\r\nauthorization: Bearer k\r\nidempotency-key: gone-1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body).await.unwrap();
    // Gone once the gateway is waiting on the collector.
    let end = Instant::now() + Duration::from_secs(10);
    while collector.requests().is_empty() {
        assert!(Instant::now() < end, "the request reached the collector");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(s);
    // The retry is handled afresh, not answered 409 for the window's length.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let r = request(
            &addr,
            "POST",
            "/v1/metrics",
            &[("authorization", "Bearer k"), ("idempotency-key", "gone-1")],
            &body,
        )
        .await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 409, "{}", r.body);
        assert!(
            Instant::now() < end,
            "still in progress long after its client went away"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = gw;
}
