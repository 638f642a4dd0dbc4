//! What `flush` and `shutdown` report: per exporter, exactly what was delivered and what was not.

use super::stats::{DropStats, PipelineStats};
use std::fmt;

/// One exporter's outcome over the reported window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExporterDelivery {
    /// Instance name.
    pub name: String,
    /// Events the destination acknowledged.
    pub delivered: u64,
    /// Events written to the dead-letter directory instead.
    pub dead_lettered: u64,
    /// Events dropped because this exporter's queue was full.
    pub dropped: u64,
    /// Events lost because the dead-letter write failed too.
    pub failed: u64,
    /// Events still queued or in flight at the deadline (lost at exit).
    pub pending: u64,
    /// Events not yet delivered but safe in the spool: delivered after a restart.
    pub spooled: u64,
}

impl ExporterDelivery {
    /// Events routed to this exporter that were not delivered and are not spooled.
    pub fn undelivered(&self) -> u64 {
        self.dead_lettered + self.dropped + self.failed + self.pending
    }
}

/// The outcome of a flush or shutdown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryReport {
    /// Events dropped before reaching any exporter, by reason.
    pub dropped_at_ingest: DropStats,
    /// Per exporter.
    pub exporters: Vec<ExporterDelivery>,
}

impl DeliveryReport {
    pub(crate) fn between(base: &PipelineStats, now: &PipelineStats) -> Self {
        let exporters = now
            .exporters
            .iter()
            .map(|e| {
                let b = base.exporter(&e.name).cloned().unwrap_or_default();
                ExporterDelivery {
                    name: e.name.clone(),
                    delivered: e.exported - b.exported,
                    dead_lettered: e.dead_lettered - b.dead_lettered,
                    dropped: e.dropped_queue_full - b.dropped_queue_full,
                    failed: e.failed - b.failed,
                    pending: if now.spool.is_some() { 0 } else { e.pending() },
                    spooled: if now.spool.is_some() { e.lag } else { 0 },
                }
            })
            .collect();
        DeliveryReport {
            dropped_at_ingest: now.dropped.minus(&base.dropped),
            exporters,
        }
    }

    /// True when nothing was dropped, dead-lettered, lost or left pending (events
    /// left in the spool are not lost: they are delivered after a restart).
    pub fn is_complete(&self) -> bool {
        self.dropped_at_ingest.total() == 0 && self.exporters.iter().all(|e| e.undelivered() == 0)
    }

    /// The named exporter's outcome.
    pub fn exporter(&self, name: &str) -> Option<&ExporterDelivery> {
        self.exporters.iter().find(|e| e.name == name)
    }
}

impl fmt::Display for DeliveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.dropped_at_ingest;
        write!(f, "dropped at ingest: {}", d.total())?;
        if d.total() > 0 {
            write!(
                f,
                " (queue_full {}, queue_bytes {}, spool_full {}, spool_error {}, block_timeout {}, shutdown {}, unrouted {}, too_large {})",
                d.queue_full, d.queue_bytes, d.spool_full, d.spool_error, d.block_timeout, d.shutdown, d.unrouted, d.too_large
            )?;
        }
        for e in &self.exporters {
            write!(
                f,
                "; {}: delivered {}, pending {}, dead-lettered {}, dropped {}, failed {}",
                e.name, e.delivered, e.pending, e.dead_lettered, e.dropped, e.failed
            )?;
            if e.spooled > 0 {
                write!(f, ", spooled {}", e.spooled)?;
            }
        }
        Ok(())
    }
}

/// Flush or shutdown ended with events not delivered; the report says where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not every event was delivered: {0}")]
pub struct DeliveryError(pub DeliveryReport);

impl DeliveryError {
    /// The report.
    pub fn report(&self) -> &DeliveryReport {
        &self.0
    }
}

/// Why [`Pipeline::accept`](crate::Pipeline::accept) did not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// The queue or the spool is full: try again later.
    #[error("the pipeline is full")]
    Full,
    /// Not durable before the timeout (exporters are slow or down and there is no spool).
    #[error("not acknowledged before the timeout")]
    Timeout,
    /// The pipeline is shutting down.
    #[error("the pipeline is shutting down")]
    ShuttingDown,
    /// The spool could not write (a write, fsync or roll error): these events may
    /// be among those refused. Try again; ids make a repeat harmless.
    #[error("the spool could not write the events")]
    NotDurable,
    /// More events or bytes than the pipeline's queue ever holds: split the batch.
    #[error("the batch is larger than the pipeline's queue holds (pipeline.queue_capacity, pipeline.queue_max_bytes)")]
    TooLarge,
    /// Without a spool: while these events were delivered, events were dropped,
    /// dead-lettered or found no exporter, and they may be among them. Nothing says
    /// these were delivered; a re-send is safe (ids dedup it).
    #[error("not all delivered: {what}")]
    NotDelivered {
        /// What was lost, named.
        what: String,
        /// Only drops (a full queue): a re-send soon may well get through. Otherwise
        /// an exporter refused them or none takes their kind, and a re-send would too.
        transient: bool,
    },
}

pub(super) fn finish(report: DeliveryReport) -> Result<DeliveryReport, DeliveryError> {
    if report.is_complete() {
        Ok(report)
    } else {
        Err(DeliveryError(report))
    }
}
