//! The http exporter through a real pipeline against a fault-injecting server
//! (in-process, scripted): bursts of 5xx, 429 with Retry-After, 401 then a key
//! rotation, 413, connection resets, slow responses. Every event id must arrive,
//! no request may precede a Retry-After deadline, nothing is sent while paused.

use flate2::read::GzDecoder;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};
use usage_conformance::{emit_relays, Answer, FaultServer, Request};
use usage_core::{EventId, Pipeline, UsageConfig};

/// (request number, authorization, events in the request) -> answer.
type Script = Arc<dyn Fn(usize, &str, usize) -> Answer + Send + Sync>;

/// Reads the event ids out of a `/v1/metrics` body, gzipped or not.
fn ids(request: &Request) -> Vec<EventId> {
    let mut raw = Vec::new();
    if request.header("content-encoding") == "gzip" {
        GzDecoder::new(&request.body[..]).read_to_end(&mut raw).unwrap();
    } else {
        raw = request.body.clone();
    }
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// A fake metrics API on a free port, answering as `script` says.
async fn fake(script: Script) -> (FaultServer, String) {
    let server = FaultServer::start(
        Arc::new(ids),
        Arc::new(move |n, r: &Request| script(n, r.header("authorization"), r.ids.len())),
    )
    .await
    .unwrap();
    let url = format!("http://{}/v1/metrics", server.addr);
    (server, url)
}

fn ok() -> Answer {
    Answer::Status(202, vec![], String::new())
}

fn pipeline(dir: &std::path::Path, url: &str, key: &str, extra: &str) -> Pipeline {
    usage_core::link_exporters!(usage_http);
    let toml = format!(
        "[pipeline]\nretry_base = \"20ms\"\nretry_max = \"200ms\"\nprobe_interval = \"100ms\"\ndata_dir = {:?}\n\
         [exporters.api]\ntype = \"http\"\nurl = {url:?}\nkey = {key}\nflush_interval = \"20ms\"\nbatch_max_events = 50\n\
         timeout = \"500ms\"\n{extra}",
        dir.display().to_string()
    );
    Pipeline::from_config(&UsageConfig::from_toml(&toml).unwrap()).unwrap()
}

async fn flush(p: &Pipeline) -> usage_core::DeliveryReport {
    p.flush(Duration::from_secs(30)).await.unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_batches_in_flight_a_batch_is_posted_before_the_one_before_is_answered() {
    let answer_after = Duration::from_millis(300);
    for (extra, overlap) in [("batches_in_flight = 2\n", true), ("", false)] {
        let server = FaultServer::slow(Arc::new(ids), answer_after).await.unwrap();
        let url = format!("http://{}/v1/metrics", server.addr);
        let dir = tempfile::tempdir().unwrap();
        let p = pipeline(dir.path(), &url, "\"k1\"", extra);
        let sent = emit_relays(&p, 200);
        let report = flush(&p).await;
        assert_eq!(report.exporter("api").unwrap().delivered, 200);
        assert_eq!(server.accepted(), sent);
        assert_eq!(server.requests().len(), 4, "four batches of 50");
        assert_eq!(
            server.second_posted_before_first_answered(answer_after),
            overlap,
            "{extra:?}"
        );
        p.shutdown(Duration::from_secs(5)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_5xx_resets_and_slow_answers_are_retried_with_the_same_key() {
    let script: Script = Arc::new(|n, _, _| match n {
        0..=2 => Answer::Status(503, vec![], "busy".into()),
        3 => Answer::Reset,
        4 => Answer::Slow(Duration::from_secs(2)),
        _ => ok(),
    });
    let (server, url) = fake(script).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &url, "\"k1\"", "");
    let sent = emit_relays(&p, 120);
    flush(&p).await;
    assert_eq!(server.accepted(), sent, "every event arrived");
    let seen = server.requests();
    let first_key = seen[0].header("idempotency-key");
    let attempts_of_first = seen.iter().filter(|r| r.header("idempotency-key") == first_key).count();
    assert!(
        attempts_of_first >= 6,
        "the same Idempotency-Key on every retry ({attempts_of_first})"
    );
    assert!(seen.iter().all(|r| r.header("authorization") == "bearer k1"));
    p.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_sent_before_retry_after() {
    let script: Script = Arc::new(|n, _, _| match n {
        0 => Answer::Status(429, vec![("retry-after", "1".into())], "slow down".into()),
        1 => Answer::Status(
            503,
            vec![(
                "retry-after",
                httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(2)),
            )],
            String::new(),
        ),
        _ => ok(),
    });
    let (server, url) = fake(script).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &url, "\"k1\"", "");
    let sent = emit_relays(&p, 10);
    flush(&p).await;
    assert_eq!(server.accepted(), sent);
    {
        let t: Vec<Instant> = server.requests().iter().map(|r| r.at).collect();
        assert!(
            t[1] - t[0] >= Duration::from_secs(1),
            "retried {:?} after a Retry-After of 1s",
            t[1] - t[0]
        );
        assert!(
            t[2] - t[1] >= Duration::from_millis(1000),
            "HTTP-date Retry-After honoured ({:?})",
            t[2] - t[1]
        );
    }
    p.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_pauses_until_it_is_rotated() {
    let script: Script = Arc::new(|_, auth, _| {
        if auth == "bearer k2" {
            ok()
        } else {
            Answer::Status(401, vec![], "bad key".into())
        }
    });
    let (server, url) = fake(script).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "k1\n").unwrap();
    let key = format!("{{ file = {:?} }}", key_file.display().to_string());
    let p = pipeline(dir.path(), &url, &key, "");
    let sent = emit_relays(&p, 30);
    let end = Instant::now() + Duration::from_secs(10);
    while !p.stats().exporters[0].paused && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(p.stats().exporters[0].paused);
    // While paused, probes send only empty batches: no event is sent again.
    let probes_seen = |n| server.requests().iter().filter(|r| r.ids.is_empty()).count() >= n;
    let end = Instant::now() + Duration::from_secs(10);
    while !probes_seen(3) {
        assert!(Instant::now() < end, "the paused exporter probes");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let with_events = server.requests().iter().filter(|r| !r.ids.is_empty()).count();
    assert_eq!(with_events, 1, "one refused batch, then nothing while paused");
    std::fs::write(&key_file, "k2").unwrap();
    flush(&p).await;
    assert_eq!(server.accepted(), sent);
    assert!(!p.stats().exporters[0].paused);
    p.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_splits_and_other_4xx_dead_letter() {
    let script: Script = Arc::new(|_, _, n| {
        if n > 12 {
            Answer::Status(413, vec![], "too big".into())
        } else if n == 1 {
            Answer::Status(400, vec![], "{\"error\":\"events[0].project: unknown project\"}".into())
        } else {
            ok()
        }
    });
    let (server, url) = fake(script).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &url, "\"k1\"", "");
    let sent = emit_relays(&p, 50);
    flush(&p).await;
    assert_eq!(server.accepted(), sent, "split down to batches the server takes");
    assert!(server.requests().iter().all(|r| r.ids.len() <= 50));
    let lone = emit_relays(&p, 1);
    let err = p.flush(Duration::from_secs(10)).await.unwrap_err();
    assert_eq!(err.report().exporter("api").unwrap().dead_lettered, 1);
    let dl = dir.path().join("dead-letter/api");
    let meta: String = std::fs::read_dir(&dl)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".meta.json"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(meta.contains("unknown project"), "the response body is kept: {meta}");
    assert!(!server.accepted().contains(lone.iter().next().unwrap()));
    let _ = p.shutdown(Duration::from_secs(5)).await;
}

#[test]
fn without_a_key_the_instance_is_off_unless_enabled() {
    usage_core::link_exporters!(usage_http, usage_file);
    let dir = tempfile::tempdir().unwrap();
    let cfg = |extra: &str| {
        UsageConfig::from_toml(&format!(
            "[pipeline]\ndata_dir = {:?}\n[exporters.api]\ntype = \"http\"\nurl = \"http://127.0.0.1:1/x\"\n{extra}\n\
             [exporters.local]\ntype = \"file\"\n",
            dir.path().display().to_string()
        ))
        .unwrap()
    };
    let p = Pipeline::from_config(&cfg("")).unwrap();
    assert_eq!(p.exporter_names(), vec!["local"], "no key: off");
    let p2 = Pipeline::from_config(&cfg("key = \"k\"")).unwrap();
    assert_eq!(p2.exporter_names(), vec!["api", "local"], "a key turns it on");
    let p3 = Pipeline::from_config(&cfg("enabled = true")).unwrap();
    assert_eq!(p3.exporter_names(), vec!["api", "local"], "or enabled = true");
    for p in [p, p2, p3] {
        let _ = p.shutdown_blocking(Duration::from_secs(1));
    }
    let e = Pipeline::from_config(&cfg("key = { env = \"USAGE_TEST_NO_SUCH_KEY\" }")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "exporters.api.key: environment variable USAGE_TEST_NO_SUCH_KEY is not set (or not UTF-8)"
    );
}
