//! `qos_sampler`: a periodic sampler that emits one `optimizer_qos` per (chain,
//! provider) per tick, skipping providers the optimizer has no score for yet, on a
//! ticker that is stopped (and awaited) on shutdown.
//!
//! ```text
//! cargo run -p usage-examples --example qos_sampler      # Ctrl-C stops it
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use usage_core::{OptimizerQos, Pipeline, Text, UsageConfig, UsageSink};

/// The optimizer's current view of one provider.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub availability: f64,
    pub latency: f64,
    pub sync: f64,
    pub stake: i64,
}

impl Score {
    /// The weighted selection score the optimizer ranks providers by.
    fn composite(&self) -> f64 {
        0.4 * self.availability + 0.4 * self.latency + 0.2 * self.sync
    }
}

/// Where scores come from: (chain, provider, score if there is one yet).
pub trait ScoreSource: Send + Sync + 'static {
    fn scores(&self) -> Vec<(Text, Text, Option<Score>)>;
}

/// A running sampler; [`Sampler::stop`] ends it.
pub struct Sampler {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    ticks: Arc<AtomicU64>,
}

impl Sampler {
    /// Samples `source` every `every`, first tick immediately.
    pub fn start(sink: UsageSink, source: Arc<dyn ScoreSource>, every: Duration, consumer: &str) -> Sampler {
        let (stop, mut stopped) = watch::channel(false);
        let ticks = Arc::new(AtomicU64::new(0));
        let counter = ticks.clone();
        let consumer = Text::new(consumer);
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            // A late tick is skipped, not replayed in a burst.
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {
                        let epoch = counter.fetch_add(1, Ordering::SeqCst) as i64;
                        sample(&sink, source.as_ref(), epoch, &consumer);
                    }
                    _ = stopped.changed() => return,
                }
            }
        });
        Sampler { stop, task, ticks }
    }

    /// Ticks so far.
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::SeqCst)
    }

    /// Stops the ticker and waits for it: no event is emitted after this returns.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// One event per scored (chain, provider); unscored providers are skipped.
fn sample(sink: &UsageSink, source: &dyn ScoreSource, epoch: i64, consumer: &Text) {
    for (index, (chain, provider, score)) in source.scores().into_iter().enumerate() {
        let Some(s) = score else { continue };
        let composite = s.composite();
        sink.emit(OptimizerQos {
            provider,
            consumer_hostname: consumer.clone(),
            chain_id: chain,
            epoch,
            entry_index: index as i64,
            provider_stake: s.stake,
            selection_availability: s.availability,
            selection_latency: s.latency,
            selection_sync: s.sync,
            selection_composite: composite,
            availability_contribution: 0.4 * s.availability / composite.max(f64::EPSILON),
            latency_contribution: 0.4 * s.latency / composite.max(f64::EPSILON),
            sync_contribution: 0.2 * s.sync / composite.max(f64::EPSILON),
            ..Default::default()
        });
    }
}

/// A fixed view for the demo: two chains, one provider not scored yet.
struct DemoOptimizer;

impl ScoreSource for DemoOptimizer {
    fn scores(&self) -> Vec<(Text, Text, Option<Score>)> {
        let s = |a, l, y, stake| {
            Some(Score {
                availability: a,
                latency: l,
                sync: y,
                stake,
            })
        };
        vec![
            ("ETH1".into(), "provider-a".into(), s(0.99, 0.8, 1.0, 5_000)),
            ("ETH1".into(), "provider-b".into(), s(0.95, 0.6, 0.9, 2_000)),
            ("ETH1".into(), "provider-new".into(), None),
            ("ARB1".into(), "provider-a".into(), s(0.97, 0.9, 1.0, 5_000)),
        ]
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    usage::link_exporters();
    let pipeline = Pipeline::from_config(&UsageConfig::load()?)?;
    let sampler = Sampler::start(
        pipeline.sink(),
        Arc::new(DemoOptimizer),
        Duration::from_secs(1),
        "consumer-1",
    );
    println!("sampling every second; Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    sampler.stop().await;
    let report = pipeline.shutdown(Duration::from_secs(10)).await?;
    println!("{report:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_event_per_scored_provider_per_tick_and_nothing_after_stop() {
        usage_core::link_exporters!(usage_file);
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "[exporters.local]\ntype = \"file\"\npath = {:?}\n",
            dir.path().join("out").display().to_string()
        );
        let pipeline = Pipeline::from_config(&UsageConfig::from_toml(&toml).unwrap()).unwrap();
        let sampler = Sampler::start(
            pipeline.sink(),
            Arc::new(DemoOptimizer),
            Duration::from_millis(20),
            "c1",
        );
        let end = Instant::now() + Duration::from_secs(10);
        while sampler.ticks() < 3 {
            assert!(Instant::now() < end, "the ticker ticks");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let emitted = {
            sampler.stop().await;
            pipeline.stats().emitted
        };
        // The task is gone: whatever it emitted is all there will be.
        let report = pipeline.shutdown(Duration::from_secs(10)).await.unwrap();
        assert_eq!(report.exporter("local").unwrap().delivered, emitted);
        assert_eq!(emitted % 3, 0, "3 scored providers per tick, the unscored one skipped");
        assert!(emitted >= 9);
        let mut got = Vec::new();
        usage_file::read::scan(&dir.path().join("out"), &Default::default(), |e| got.push(e)).unwrap();
        assert_eq!(got.len() as u64, emitted);
        let providers: std::collections::BTreeSet<String> =
            got.iter().map(|e| format!("{:?}", e.field("provider"))).collect();
        assert!(!providers.iter().any(|p| p.contains("provider-new")), "{providers:?}");
        let epochs: std::collections::BTreeSet<String> =
            got.iter().map(|e| format!("{:?}", e.field("epoch"))).collect();
        assert_eq!(epochs.len() as u64, emitted / 3, "one epoch per tick");
    }
}
