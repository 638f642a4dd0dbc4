//! Review H7: a gateway without a spool answers 200 only for events every routed
//! exporter delivered; events dead-lettered by a downstream collector or taken by
//! no exporter get an error answer, counted as `not_delivered`.

mod common;

use common::{batch, relays, request, serve};
use std::sync::Arc;
use usage_conformance::{Answer, FaultServer};
use usage_core::{Event, NetworkEvent, UsageConfig};
use usage_gateway::Gateway;

async fn start(dir: &std::path::Path, exporters: &str) -> (String, Arc<Gateway>) {
    usage_core::link_exporters!(usage_file, usage_otlp);
    let toml = format!(
        "[pipeline]\nflush_interval = \"10ms\"\nretry_base = \"5ms\"\nretry_max = \"20ms\"\ndata_dir = \"{d}/data\"\n\
         [gateway]\n[[gateway.keys]]\nkey = \"k\"\n{exporters}",
        d = dir.display()
    );
    let gw = Gateway::new(&UsageConfig::from_toml(&toml).unwrap()).unwrap();
    (serve(&gw).await, gw)
}

const KEY: (&str, &str) = ("authorization", "Bearer k");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_no_exporter_takes_are_not_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out").display().to_string();
    let (addr, _gw) = start(
        dir.path(),
        &format!("[exporters.streams]\ntype = \"file\"\npath = {out:?}\nevents = [\"network_event\"]\n"),
    )
    .await;
    let r = request(&addr, "POST", "/v1/metrics", &[KEY], &batch(&relays("acme", 2))).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(r.body.contains("2 events unrouted"), "{}", r.body);
    let r = request(
        &addr,
        "POST",
        "/v1/metrics",
        &[KEY],
        &batch(&[Event::new(NetworkEvent::default())]),
    )
    .await;
    assert_eq!(r.status, 200, "what an exporter delivers is acknowledged: {}", r.body);
    let m = request(&addr, "GET", "/metrics", &[], b"").await.body;
    assert!(
        m.contains("usage_gateway_rejected_requests_total{reason=\"not_delivered\"} 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_a_downstream_collector_refuses_are_not_acknowledged() {
    let collector = FaultServer::start(Arc::new(|_| Vec::new()), Arc::new(|_, _| Answer::status(400)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (addr, _gw) = start(
        dir.path(),
        &format!(
            "[exporters.up]\ntype = \"otlp\"\nendpoint = \"http://{}\"\n",
            collector.addr
        ),
    )
    .await;
    let r = request(&addr, "POST", "/v1/metrics", &[KEY], &batch(&relays("acme", 3))).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(r.body.contains("3 events dead-lettered"), "{}", r.body);
    assert!(!collector.requests().is_empty(), "the collector was asked");
}
