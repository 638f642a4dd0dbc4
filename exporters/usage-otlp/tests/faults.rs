//! The otlp exporter through a real pipeline against a scripted collector
//! (in-process): every answer an OTLP collector can give is counted and handled
//! (retry honouring Retry-After, pause on 401 and resume, split on 413,
//! dead-letter on other 4xx), and every event id arrives once the collector takes it.
//!
//! The exporter sends from the pipeline's runtime whoever emits: a thread with no
//! runtime or one inside a host's runtime.

use std::sync::Arc;
use std::time::{Duration, Instant};
use usage_conformance::{emit_relays, Answer, FaultServer, Request};
use usage_core::{EventId, Pipeline, UsageConfig};
use usage_otlp::receive::{decode_request, events_from_request, ReceiveOptions};

/// The collector's answer: status, headers, body.
type Reply = (u16, Vec<(&'static str, String)>, String);
/// (request number, records in it, authorization) -> answer.
type Script = Arc<dyn Fn(usize, usize, &str) -> Reply + Send + Sync>;

/// Decodes an OTLP logs request (protobuf or JSON) back into its events' ids.
fn ids(request: &Request) -> Vec<EventId> {
    let json = request.header("content-type") == "application/json";
    let req = decode_request(&request.body, json).expect("a valid OTLP request");
    events_from_request(&req, &ReceiveOptions::default())
        .and_then(|r| r.all())
        .expect("records that decode back into events")
        .iter()
        .map(|e| e.id())
        .collect()
}

/// A scripted collector on a free port; its endpoint is `http://addr`.
async fn collector(script: Script) -> (FaultServer, String) {
    let server = FaultServer::start(
        Arc::new(ids),
        Arc::new(move |n, r: &Request| {
            let (status, headers, body) = script(n, r.ids.len(), r.header("authorization"));
            Answer::Status(status, headers, body)
        }),
    )
    .await
    .unwrap();
    let endpoint = format!("http://{}", server.addr);
    (server, endpoint)
}

fn ok() -> Reply {
    (200, vec![], String::new())
}

fn pipeline(dir: &std::path::Path, endpoint: &str, extra: &str) -> Pipeline {
    usage_core::link_exporters!(usage_otlp);
    let toml = format!(
        "[pipeline]\nretry_base = \"20ms\"\nretry_max = \"200ms\"\nprobe_interval = \"100ms\"\ndata_dir = {:?}\n\
         [exporters.otel]\ntype = \"otlp\"\nendpoint = {endpoint:?}\nflush_interval = \"20ms\"\nbatch_max_events = 50\n\
         timeout = \"2s\"\n{extra}",
        dir.display().to_string()
    );
    Pipeline::from_config(&UsageConfig::from_toml(&toml).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_and_throttled_answers_are_retried_after_retry_after() {
    let script: Script = Arc::new(|n, _, _| match n {
        0 => (503, vec![], "overloaded".into()),
        1 => (429, vec![("retry-after", "1".into())], String::new()),
        _ => ok(),
    });
    let (c, endpoint) = collector(script).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &endpoint, "");
    let sent = emit_relays(&p, 40);
    let report = p.flush(Duration::from_secs(30)).await.unwrap();
    assert_eq!(c.accepted(), sent);
    let stats = p.stats();
    let s = stats.exporter("otel").unwrap();
    assert_eq!(s.exported, 40, "{s:?}");
    assert!(s.retried >= 2, "the 503 and the 429 are counted as retries: {s:?}");
    assert_eq!(report.exporter("otel").unwrap().delivered, 40);
    let gap = {
        let seen = c.requests();
        seen[2].at - seen[1].at
    };
    assert!(
        gap >= Duration::from_millis(990),
        "retried {gap:?} after `Retry-After: 1`"
    );
    p.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_pauses_the_exporter_until_the_collector_takes_it() {
    let key_ok = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let k = key_ok.clone();
    let script: Script = Arc::new(move |_, _, _| {
        if k.load(std::sync::atomic::Ordering::SeqCst) {
            ok()
        } else {
            (401, vec![], "bad key".into())
        }
    });
    let (c, endpoint) = collector(script).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        &endpoint,
        "[exporters.otel.headers]\nauthorization = \"Bearer k\"\n",
    );
    let sent = emit_relays(&p, 30);
    let end = Instant::now() + Duration::from_secs(10);
    while !p.stats().exporter("otel").unwrap().paused {
        assert!(Instant::now() < end, "a 401 pauses the exporter");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(c.accepted().is_empty());
    key_ok.store(true, std::sync::atomic::Ordering::SeqCst);
    p.flush(Duration::from_secs(20)).await.unwrap();
    assert_eq!(
        c.accepted(),
        sent,
        "after the probe succeeds, everything held is delivered"
    );
    assert!(!p.stats().exporter("otel").unwrap().paused);
    p.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_splits_and_other_4xx_dead_letter() {
    let script: Script = Arc::new(|_, records, _| {
        if records > 12 {
            (413, vec![], "too big".into())
        } else if records == 1 {
            (400, vec![], "bad record".into())
        } else {
            ok()
        }
    });
    let (c, endpoint) = collector(script).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &endpoint, "");
    let sent = emit_relays(&p, 50);
    p.flush(Duration::from_secs(30)).await.unwrap();
    assert_eq!(c.accepted(), sent, "split down to requests the collector takes");
    let lone = emit_relays(&p, 1);
    let err = p.flush(Duration::from_secs(10)).await.unwrap_err();
    assert_eq!(err.report().exporter("otel").unwrap().dead_lettered, 1);
    assert!(!c.accepted().contains(lone.iter().next().unwrap()));
    let _ = p.shutdown(Duration::from_secs(5)).await;
}

#[test]
fn emits_from_threads_with_and_without_a_runtime() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (c, endpoint) = rt.block_on(collector(Arc::new(|_, _, _| ok())));
    let dir = tempfile::tempdir().unwrap();
    // Built and used outside any runtime.
    let p = pipeline(dir.path(), &endpoint, "protocol = \"http/json\"");
    let mut sent = emit_relays(&p, 10);
    // From inside a current-thread runtime, as a host's async code would.
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    current.block_on(async { sent.extend(emit_relays(&p, 10)) });
    let report = p.shutdown_blocking(Duration::from_secs(20)).unwrap();
    assert_eq!(report.exporter("otel").unwrap().delivered, 20);
    assert_eq!(c.accepted(), sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_a_collector_refuses_in_partial_success_are_not_counted_delivered() {
    // Review M8: a 200 with partial_success is not a delivery of every record.
    let script: Script = Arc::new(|n, _, _| match n {
        0 => (
            200,
            vec![("content-type", "application/json".into())],
            r#"{"partialSuccess":{"rejectedLogRecords":"1","errorMessage":"record 3: bad value"}}"#.into(),
        ),
        _ => ok(),
    });
    let (_c, endpoint) = collector(script).await;
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), &endpoint, "protocol = \"http/json\"\n");
    emit_relays(&p, 10);
    let err = p.flush(Duration::from_secs(10)).await.unwrap_err();
    let report = err.report().exporter("otel").unwrap().clone();
    assert_eq!(report.delivered, 0, "{report:?}");
    assert_eq!(
        report.dead_lettered, 10,
        "kept, since the collector does not say which: {report:?}"
    );
    let last_error = p
        .stats()
        .exporter("otel")
        .unwrap()
        .last_error
        .clone()
        .unwrap_or_default();
    assert!(last_error.contains("refused 1 of 10"), "{last_error}");
    let _ = p.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_posted_without_waiting_for_the_answers_before_them() {
    let answer_after = Duration::from_secs(1);
    for (in_flight, overlap) in [("", true), ("batches_in_flight = 1\n", false)] {
        let c = FaultServer::slow(Arc::new(ids), answer_after).await.unwrap();
        let endpoint = format!("http://{}", c.addr);
        let dir = tempfile::tempdir().unwrap();
        let p = pipeline(dir.path(), &endpoint, in_flight);
        let sent = emit_relays(&p, 200);
        let report = p.flush(Duration::from_secs(30)).await.unwrap();
        assert_eq!(report.exporter("otel").unwrap().delivered, 200);
        assert_eq!(c.accepted(), sent);
        assert_eq!(c.requests().len(), 4, "four batches of 50");
        assert_eq!(
            c.second_posted_before_first_answered(answer_after),
            overlap,
            "{in_flight:?}"
        );
        p.shutdown(Duration::from_secs(5)).await.unwrap();
    }
}
