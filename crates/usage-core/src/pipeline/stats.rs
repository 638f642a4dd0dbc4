//! Counters and the public stats snapshot.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use super::histogram::{self, Histogram, HistogramSnapshot};

/// Why events were dropped at ingest (before any exporter saw them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DropStats {
    /// The queue held `queue_capacity` events.
    pub queue_full: u64,
    /// The queue held `queue_max_bytes`.
    pub queue_bytes: u64,
    /// The queue was full because the spool reached `max_bytes`.
    pub spool_full: u64,
    /// The spool could not write them (a write, fsync or roll error): refused, not
    /// delivered, so that nothing is acknowledged that is not on disk.
    pub spool_error: u64,
    /// `block_with_timeout` waited `block_timeout` without finding space.
    pub block_timeout: u64,
    /// Emitted after shutdown began.
    pub shutdown: u64,
    /// No configured exporter subscribes to the event's kind.
    pub unrouted: u64,
    /// With a spool: the event held more than a spool record carries
    /// ([`MAX_EVENT_BYTES`](crate::MAX_EVENT_BYTES) by `Event::approx_bytes`).
    pub too_large: u64,
}

impl DropStats {
    /// All drops.
    pub fn total(&self) -> u64 {
        self.queue_full
            + self.queue_bytes
            + self.spool_full
            + self.spool_error
            + self.block_timeout
            + self.shutdown
            + self.unrouted
            + self.too_large
    }

    pub(crate) fn minus(&self, base: &DropStats) -> DropStats {
        DropStats {
            queue_full: self.queue_full - base.queue_full,
            queue_bytes: self.queue_bytes - base.queue_bytes,
            spool_full: self.spool_full - base.spool_full,
            spool_error: self.spool_error - base.spool_error,
            block_timeout: self.block_timeout - base.block_timeout,
            shutdown: self.shutdown - base.shutdown,
            unrouted: self.unrouted - base.unrouted,
            too_large: self.too_large - base.too_large,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct DropCounters {
    pub(crate) queue_full: AtomicU64,
    pub(crate) queue_bytes: AtomicU64,
    pub(crate) spool_full: AtomicU64,
    pub(crate) spool_error: AtomicU64,
    pub(crate) block_timeout: AtomicU64,
    pub(crate) shutdown: AtomicU64,
    pub(crate) unrouted: AtomicU64,
    pub(crate) too_large: AtomicU64,
}

impl DropCounters {
    pub(crate) fn snapshot(&self) -> DropStats {
        DropStats {
            queue_full: self.queue_full.load(Relaxed),
            queue_bytes: self.queue_bytes.load(Relaxed),
            spool_full: self.spool_full.load(Relaxed),
            spool_error: self.spool_error.load(Relaxed),
            block_timeout: self.block_timeout.load(Relaxed),
            shutdown: self.shutdown.load(Relaxed),
            unrouted: self.unrouted.load(Relaxed),
            too_large: self.too_large.load(Relaxed),
        }
    }
}

/// One exporter instance's counters (events unless noted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExporterStats {
    /// Instance name.
    pub name: String,
    /// Exporter type.
    pub type_name: String,
    /// Events routed to this exporter's queue.
    pub routed: u64,
    /// Events the destination acknowledged.
    pub exported: u64,
    /// Export attempts that were retries.
    pub retried: u64,
    /// Export attempts that failed (any reason).
    pub errors: u64,
    /// Events written to the dead-letter directory.
    pub dead_lettered: u64,
    /// Events dropped because this exporter's queue was full (it was too slow or down).
    pub dropped_queue_full: u64,
    /// Events lost because even the dead-letter write failed.
    pub failed: u64,
    /// Events waiting in this exporter's queue.
    pub queued_events: u64,
    /// Bytes waiting in this exporter's queue.
    pub queued_bytes: u64,
    /// The most bytes its queue holds (`queue_max_bytes`).
    pub queue_max_bytes: u64,
    /// The most events its queue holds (`queue_max_events`).
    pub queue_max_events: u64,
    /// Seconds per export call (every attempt, whatever its outcome).
    pub export_seconds: HistogramSnapshot,
    /// Events per delivered batch.
    pub batch_events: HistogramSnapshot,
    /// Events in the batch being exported now.
    pub in_flight: u64,
    /// Paused after an authentication failure.
    pub paused: bool,
    /// Every event below this sequence number is finished for this exporter (its
    /// spool cursor).
    pub cursor: u64,
    /// Events routed after the cursor (all kinds), i.e. how far behind it is.
    pub lag: u64,
    /// The last export error, if any.
    pub last_error: Option<String>,
}

impl ExporterStats {
    /// Routed events not yet exported, dead-lettered or failed.
    pub fn pending(&self) -> u64 {
        self.routed
            .saturating_sub(self.exported + self.dead_lettered + self.failed)
    }
}

/// A snapshot of the whole pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PipelineStats {
    /// Events passed to `emit` (accepted + dropped at ingest, except unrouted which
    /// is part of accepted).
    pub emitted: u64,
    /// Events that entered the queue.
    pub accepted: u64,
    /// Drops at ingest, by reason.
    pub dropped: DropStats,
    /// Events in the ingest queue. Counted by walking the queue; while the router
    /// moves events under every walk, the slots in use instead, which may include
    /// slots emitting threads claimed and have not yet filled (fewer than 48 per
    /// thread in the default queue, 64 in the largest).
    pub queued_events: u64,
    /// Bytes in the ingest queue.
    pub queued_bytes: u64,
    /// The most bytes the ingest queue holds (`pipeline.queue_max_bytes`).
    pub queue_max_bytes: u64,
    /// Per exporter.
    pub exporters: Vec<ExporterStats>,
    /// The spool, when one is configured.
    pub spool: Option<crate::spool::SpoolStats>,
}

impl PipelineStats {
    /// The named exporter's stats.
    pub fn exporter(&self, name: &str) -> Option<&ExporterStats> {
        self.exporters.iter().find(|e| e.name == name)
    }
}

pub(crate) struct ExporterCounters {
    pub(crate) routed: AtomicU64,
    pub(crate) exported: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) dropped_queue_full: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) paused: AtomicBool,
    pub(crate) last_error: Mutex<Option<String>>,
    /// Seconds per export call, whatever its outcome.
    pub(crate) export_seconds: Histogram,
    /// Events per delivered batch.
    pub(crate) batch_events: Histogram,
}

impl Default for ExporterCounters {
    fn default() -> Self {
        ExporterCounters {
            routed: AtomicU64::new(0),
            exported: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            dropped_queue_full: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            paused: AtomicBool::new(false),
            last_error: Mutex::new(None),
            export_seconds: Histogram::new(histogram::SECONDS),
            batch_events: Histogram::new(histogram::EVENTS),
        }
    }
}

impl ExporterCounters {
    pub(crate) fn set_error(&self, e: &str) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
    }
}

/// A Prometheus label value: backslash, double quote and newline escaped, so an
/// instance name from config cannot break or forge a line of `/metrics`.
pub(crate) fn label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

impl PipelineStats {
    /// The stats in Prometheus text format (metric names prefixed `usage_`).
    ///
    /// ```
    /// let text = usage_core::PipelineStats::default().to_prometheus();
    /// assert!(text.contains("usage_pipeline_emitted_events_total 0"));
    /// ```
    pub fn to_prometheus(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let mut counter = |name: &str, help: &str, rows: &[(String, u64)]| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, v) in rows {
                let _ = writeln!(o, "{name}{labels} {v}");
            }
        };
        counter(
            "usage_pipeline_emitted_events_total",
            "Events passed to emit.",
            &[(String::new(), self.emitted)],
        );
        counter(
            "usage_pipeline_accepted_events_total",
            "Events that entered the queue.",
            &[(String::new(), self.accepted)],
        );
        let d = &self.dropped;
        counter(
            "usage_pipeline_dropped_events_total",
            "Events dropped before any exporter, by reason.",
            &[
                ("{reason=\"queue_full\"}".into(), d.queue_full),
                ("{reason=\"queue_bytes\"}".into(), d.queue_bytes),
                ("{reason=\"spool_full\"}".into(), d.spool_full),
                ("{reason=\"spool_error\"}".into(), d.spool_error),
                ("{reason=\"block_timeout\"}".into(), d.block_timeout),
                ("{reason=\"shutdown\"}".into(), d.shutdown),
                ("{reason=\"unrouted\"}".into(), d.unrouted),
                ("{reason=\"too_large\"}".into(), d.too_large),
            ],
        );
        let per = |f: fn(&ExporterStats) -> u64| -> Vec<(String, u64)> {
            self.exporters
                .iter()
                .map(|e| {
                    let labels = format!(
                        "{{exporter=\"{}\",type=\"{}\"}}",
                        label_value(&e.name),
                        label_value(&e.type_name)
                    );
                    (labels, f(e))
                })
                .collect()
        };
        counter(
            "usage_exporter_exported_events_total",
            "Events the destination acknowledged.",
            &per(|e| e.exported),
        );
        counter(
            "usage_exporter_retries_total",
            "Export attempts that were retries.",
            &per(|e| e.retried),
        );
        counter(
            "usage_exporter_errors_total",
            "Export attempts that failed.",
            &per(|e| e.errors),
        );
        counter(
            "usage_exporter_dead_lettered_events_total",
            "Events written to the dead-letter directory.",
            &per(|e| e.dead_lettered),
        );
        counter(
            "usage_exporter_dropped_events_total",
            "Events dropped because the exporter's queue was full.",
            &per(|e| e.dropped_queue_full),
        );
        counter(
            "usage_exporter_failed_events_total",
            "Events lost because the dead-letter write failed.",
            &per(|e| e.failed),
        );
        if let Some(s) = &self.spool {
            counter(
                "usage_spool_replayed_events_total",
                "Events exporters read back from the spool: after a restart, or skipped in their queue while they lagged.",
                &[(String::new(), s.replayed_events)],
            );
        }
        let mut gauge = |name: &str, help: &str, rows: Vec<(String, u64)>| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (labels, v) in rows {
                let _ = writeln!(o, "{name}{labels} {v}");
            }
        };
        gauge(
            "usage_build_info",
            "1, labelled with the version of usage-core serving these metrics.",
            vec![(format!("{{version=\"{}\"}}", env!("CARGO_PKG_VERSION")), 1)],
        );
        gauge(
            "usage_pipeline_queued_events",
            "Events in the ingest queue.",
            vec![(String::new(), self.queued_events)],
        );
        // Capacity beside use: alert on the ratio before anything is dropped.
        gauge(
            "usage_pipeline_queued_bytes",
            "Bytes in the ingest queue.",
            vec![(String::new(), self.queued_bytes)],
        );
        gauge(
            "usage_pipeline_queue_max_bytes",
            "The most bytes the ingest queue holds.",
            vec![(String::new(), self.queue_max_bytes)],
        );
        gauge(
            "usage_exporter_queued_bytes",
            "Bytes in the exporter's queue.",
            per(|e| e.queued_bytes),
        );
        gauge(
            "usage_exporter_queue_max_events",
            "The most events the exporter's queue holds.",
            per(|e| e.queue_max_events),
        );
        gauge(
            "usage_exporter_queue_max_bytes",
            "The most bytes the exporter's queue holds.",
            per(|e| e.queue_max_bytes),
        );
        gauge(
            "usage_exporter_queued_events",
            "Events in the exporter's queue.",
            per(|e| e.queued_events),
        );
        gauge(
            "usage_exporter_lag_events",
            "Events routed after the exporter's cursor.",
            per(|e| e.lag),
        );
        gauge(
            "usage_exporter_paused",
            "1 while paused after an authentication failure.",
            per(|e| u64::from(e.paused)),
        );
        if let Some(s) = &self.spool {
            gauge(
                "usage_spool_bytes",
                "Bytes of spool segments.",
                vec![(String::new(), s.bytes)],
            );
            gauge(
                "usage_spool_max_bytes",
                "The spool's bound (spool.max_bytes).",
                vec![(String::new(), s.max_bytes)],
            );
            gauge(
                "usage_spool_segments",
                "Spool segment files.",
                vec![(String::new(), s.segments)],
            );
            gauge(
                "usage_spool_quarantined_bytes",
                "Damaged spool bytes quarantined.",
                vec![(String::new(), s.quarantined_bytes)],
            );
            gauge(
                "usage_spool_lost_events",
                "Spooled events found lost when the spool was opened, by reason: in damaged records, in missing segments, behind a schema damaged in every copy.",
                vec![
                    ("{reason=\"damaged\"}".into(), s.lost_damaged_events),
                    ("{reason=\"missing\"}".into(), s.lost_missing_events),
                    ("{reason=\"unreadable\"}".into(), s.lost_unreadable_events),
                ],
            );
        }
        for (name, help, read) in [
            (
                "usage_exporter_export_seconds",
                "Seconds per export call, whatever its outcome.",
                (|e: &ExporterStats| &e.export_seconds) as fn(&ExporterStats) -> &HistogramSnapshot,
            ),
            (
                "usage_exporter_batch_events",
                "Events per delivered batch.",
                |e: &ExporterStats| &e.batch_events,
            ),
        ] {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} histogram");
            for e in &self.exporters {
                let labels = format!(
                    "exporter=\"{}\",type=\"{}\"",
                    label_value(&e.name),
                    label_value(&e.type_name)
                );
                let h = read(e);
                for (le, n) in &h.buckets {
                    let _ = writeln!(o, "{name}_bucket{{{labels},le=\"{le}\"}} {n}");
                }
                let _ = writeln!(o, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(o, "{name}_sum{{{labels}}} {}", h.sum);
                let _ = writeln!(o, "{name}_count{{{labels}}} {}", h.count);
            }
        }
        o
    }
}
