//! Pausing an exporter whose credentials stopped working. With batches in flight
//! several deliveries can be refused at once; one of them probes and logs for all,
//! the others wait for it and retry as soon as it resumes.

use super::worker::Worker;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use tokio::sync::Mutex;
use tokio::time::{sleep, timeout};

/// Shared by a worker's deliveries.
#[derive(Default)]
pub(crate) struct PauseGate {
    /// Held by the delivery that is paused and probing.
    probing: Mutex<()>,
    /// How many times the exporter has resumed.
    resumes: AtomicU64,
}

/// Where pausing stood when an export attempt began: a resume after that point
/// (by probe or by request) answers this attempt's refusal too.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PauseEpoch {
    resumes: u64,
    requests: u64,
}

impl Worker {
    /// Taken before each export attempt.
    pub(super) fn pause_epoch(&self) -> PauseEpoch {
        PauseEpoch {
            resumes: self.pause.resumes.load(SeqCst),
            requests: self.slot.resume_requests(),
        }
    }

    /// Holds a refused delivery until the exporter may send again: a probe
    /// succeeds or [`Pipeline::resume`](crate::Pipeline::resume) is called. Returns
    /// at once when that already happened after `epoch`.
    pub(super) async fn pause_until_resumed(&self, message: &str, epoch: PauseEpoch) {
        let _probing = self.pause.probing.lock().await;
        if self.pause.resumes.load(SeqCst) != epoch.resumes {
            // Another delivery was refused and saw the exporter resume meanwhile.
            return;
        }
        let c = &self.slot.counters;
        c.paused.store(true, Relaxed);
        tracing::error!(
            exporter = %self.slot.name,
            probe_every_s = self.settings.probe_interval.as_secs_f64(),
            "exporter PAUSED, keeping its data and sending nothing until credentials work: {message}"
        );
        loop {
            let requested = self.slot.resume.notified();
            tokio::pin!(requested);
            requested.as_mut().enable();
            if self.slot.resume_requests() != epoch.requests {
                tracing::warn!(exporter = %self.slot.name, "exporter resumed by request");
                break;
            }
            tokio::select! {
                _ = requested => {}
                _ = sleep(self.settings.probe_interval) => {
                    match timeout(self.settings.export_timeout, self.exporter.probe()).await {
                        Ok(Ok(())) => {
                            tracing::warn!(exporter = %self.slot.name, "probe succeeded, exporter resumed");
                            break;
                        }
                        Ok(Err(e)) => tracing::debug!(exporter = %self.slot.name, error = %e, "probe failed, still paused"),
                        Err(_) => tracing::debug!(exporter = %self.slot.name, "probe timed out, still paused"),
                    }
                }
            }
        }
        self.pause.resumes.fetch_add(1, SeqCst);
        c.paused.store(false, Relaxed);
    }
}
