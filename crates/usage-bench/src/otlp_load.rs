//! `usage-bench otlp-load`: a fixed number of `relay_usage` log records sent as
//! OTLP/HTTP protobuf requests of `batch` records, `concurrency` at a time. Every
//! request is retried until the receiver takes it, so `sent` is exact. With a
//! `rate`, request `i` is not sent before `i * batch / rate` seconds from the start:
//! a steady load the receiver can keep up with, instead of a burst.

use crate::workload;
use prost::Message;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use usage_core::Resource;

pub struct Load {
    pub url: String,
    pub events: u64,
    pub batch: u64,
    pub concurrency: usize,
    pub headers: Vec<(String, String)>,
    /// Records per second; `None` sends as fast as the receiver takes them.
    pub rate: Option<u64>,
}

pub fn run(load: &Load) -> Result<serde_json::Value, String> {
    // Bodies are built before the clock starts: the sender's cost is not the receiver's.
    let resource = Resource::new("usage-bench");
    let bodies: Vec<Vec<u8>> = (0..load.events)
        .step_by(load.batch as usize)
        .map(|first| {
            let events: Vec<_> = (first..(first + load.batch).min(load.events))
                .map(workload::relay)
                .collect();
            let mut request = usage_otlp::proto::request(&resource, &events);
            // Lava's producers name the kind in the body only (../shared/interop.md).
            for lr in request
                .resource_logs
                .iter_mut()
                .flat_map(|r| &mut r.scope_logs)
                .flat_map(|s| &mut s.log_records)
            {
                lr.event_name.clear();
            }
            request.encode_to_vec()
        })
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let interval = load
        .rate
        .map(|r| Duration::from_secs_f64(load.batch as f64 / r.max(1) as f64));
    let clock = tokio::time::Instant::from_std(start);
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..load.concurrency {
            let (bodies, next, retries, client) = (bodies.clone(), next.clone(), retries.clone(), client.clone());
            let (url, headers) = (load.url.clone(), load.headers.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(body) = bodies.get(i) else { return };
                    if let Some(every) = interval {
                        tokio::time::sleep_until(clock + every.mul_f64(i as f64)).await;
                    }
                    loop {
                        let mut req = client
                            .post(&url)
                            .header("content-type", "application/x-protobuf")
                            .body(body.clone());
                        for (k, v) in &headers {
                            req = req.header(k, v);
                        }
                        match req.send().await {
                            Ok(r) if r.status().is_success() => break,
                            _ => {
                                retries.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "sent": load.events,
        "requests": bodies.len(),
        "retried_requests": retries.load(Ordering::Relaxed),
        "seconds": seconds,
        "rate": load.rate,
    }))
}
