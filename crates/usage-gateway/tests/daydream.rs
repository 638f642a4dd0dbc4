//! Daydream's reporter contract on `/v1/metrics` (shared/interop.md), in-process:
//! its body verbatim, 200 only, one bad event costing only itself, re-sends keeping ids.

mod common;

use std::sync::Arc;
use std::time::Duration;
use usage_core::{Event, UsageConfig, Value};
use usage_gateway::Gateway;

async fn start(dir: &std::path::Path) -> (String, Arc<Gateway>) {
    start_with(dir, "").await
}

/// A gateway with `gateway_keys` added to its `[gateway]` section.
async fn start_with(dir: &std::path::Path, gateway_keys: &str) -> (String, Arc<Gateway>) {
    usage_core::link_exporters!(usage_file);
    let toml = format!(
        "[pipeline]\nflush_interval = \"20ms\"\ndata_dir = {data:?}\n[gateway]\n{gateway_keys}\n\
         [[gateway.keys]]\nkey = \"dd-key\"\nname = \"daydream\"\n\
         [exporters.out]\ntype = \"file\"\npath = {out:?}\n",
        data = dir.join("data").display().to_string(),
        out = dir.join("out").display().to_string(),
    );
    let gw = Gateway::new(&UsageConfig::from_toml(&toml).unwrap()).unwrap();
    let url = format!("http://{}/v1/metrics", common::serve(&gw).await);
    (url, gw)
}

async fn post(url: &str, key: &str, body: String) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_eq!(
        r.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "every answer is JSON"
    );
    (status, serde_json::from_slice(&r.bytes().await.unwrap()).unwrap())
}

fn stored(dir: &std::path::Path) -> Vec<Event> {
    let mut out = Vec::new();
    let _ = usage_file::read::scan(&dir.join("out"), &Default::default(), |e| out.push(e));
    out
}

const DATA: &str = r#"{"type":"stream_started","client_source":"scope","session_id":"s-9","pipeline_ids":["longlive"],"connection_info":{"ice":[1,{"a":null}]},"user_id":"u1"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reporter_body_is_taken_verbatim_and_answered_200() {
    let dir = tempfile::tempdir().unwrap();
    let (url, gw) = start(dir.path()).await;
    let body = format!(
        r#"{{"app":"scope","host":"worker-3","events":[
            {{"type":"stream_started","data":{DATA},"id":"6f1c2a4e-8b7d-4c3e-9a2b-1d0e5f6a7b8c","timestamp":"1764633600000"}},
            {{"type":"stream_stopped","data":{{"session_id":"s-9"}},"timestamp":"2025-12-02T00:00:05Z"}},
            {{"type":"error","data":{{"session_id":"s-9"}},"timestamp":"later"}}]}}"#
    );
    let (status, answer) = post(&url, "dd-key", body.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 2);
    assert_eq!(answer["rejected"][0]["index"], 2);
    assert_eq!(answer["rejected"][0]["reason"], "bad_time");
    // The reporter re-sends the same batch when it did not see the answer.
    let (status, again) = post(&url, "dd-key", body).await;
    assert_eq!((status, &again["accepted"]), (200, &serde_json::json!(2)));
    gw.pipeline().flush(Duration::from_secs(10)).await.unwrap();
    let got = stored(dir.path());
    assert!(got.len() >= 2, "{got:?}");
    let ids: std::collections::HashSet<_> = got.iter().map(|e| e.id()).collect();
    assert_eq!(ids.len(), 2, "a re-send keeps its ids, the id-less event's included");
    let first = got
        .iter()
        .find(|e| e.id().to_string() == "6f1c2a4e-8b7d-4c3e-9a2b-1d0e5f6a7b8c")
        .expect("the reporter's id is kept");
    assert_eq!(first.field("data"), Some(Value::Str(DATA)), "data byte for byte");
    assert_eq!(first.field("stream_id"), Some(Value::Str("s-9")));
    assert_eq!(first.resource().unwrap().service_instance_id.as_str(), "worker-3");
    // The refused event is kept, twice (it was sent twice), and counted.
    let kept: usize = std::fs::read_dir(dir.path().join("data/rejected"))
        .unwrap()
        .flatten()
        .map(|f| std::fs::read_to_string(f.path()).unwrap().lines().count())
        .sum();
    assert_eq!(kept, 2);
    let metrics = reqwest::get(url.replace("/v1/metrics", "/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("usage_gateway_rejected_records_total{reason=\"bad_time\"} 2"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reporter_gets_the_statuses_it_reacts_to() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _gw) = start(dir.path()).await;
    let one = r#"{"app":"scope","events":[{"type":"x","data":{}}]}"#.to_string();
    assert_eq!(post(&url, "wrong", one).await.0, 401, "pause, keep the batch");
    let (status, e) = post(&url, "dd-key", "{\"events\": 3}".into()).await;
    assert_eq!(status, 400, "nothing readable: {e}");
    // 500 events of about 2 KiB (1 MiB) are within the default limits.
    let big = format!(r#"{{"type":"x","data":{{"pad":"{}"}}}}"#, "p".repeat(2000));
    let events = vec![big; 500].join(",");
    let (status, answer) = post(&url, "dd-key", format!(r#"{{"app":"scope","events":[{events}]}}"#)).await;
    assert_eq!(
        (status, &answer["accepted"]),
        (200, &serde_json::json!(500)),
        "{answer}"
    );
    let many = vec![r#"{"type":"x"}"#; 10_001].join(",");
    let (status, e) = post(&url, "dd-key", format!(r#"{{"events":[{many}]}}"#)).await;
    assert_eq!(status, 413, "halve and retry: {e}");
    assert!(e["error"].as_str().unwrap().contains("gateway.max_events"), "{e}");
}

#[test]
fn limits_below_what_the_reporter_sends_are_a_config_error() {
    for (key, value) in [("max_events", "100"), ("max_body", "\"64KiB\"")] {
        let toml = format!("[gateway]\n{key} = {value}\n[[gateway.keys]]\nkey = \"k\"\n");
        let err = Gateway::new(&UsageConfig::from_toml(&toml).unwrap())
            .err()
            .expect("refused");
        assert!(err.to_string().contains(&format!("gateway.{key}")), "{err}");
    }
}

/// A refused record is kept before anything is answered: if it cannot be written,
/// the whole request gets 503 and nothing of it is accepted (the client re-sends it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_record_that_cannot_be_kept_refuses_the_request() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blocker"), b"a file where a directory must go").unwrap();
    let rejected = dir.path().join("blocker/rejected").display().to_string();
    let (url, gw) = start_with(dir.path(), &format!("rejected_dir = {rejected:?}")).await;
    let body = r#"{"events":[{"type":"ok","timestamp":"1764633600000"},{"type":"bad","timestamp":"never"}]}"#;
    let (status, answer) = post(&url, "dd-key", body.into()).await;
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("nothing was accepted"),
        "{answer}"
    );
    gw.pipeline().flush(Duration::from_secs(10)).await.unwrap();
    assert!(stored(dir.path()).is_empty(), "the valid event was not accepted either");
}
