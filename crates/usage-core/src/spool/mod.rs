//! The crash-safe spool: a write-ahead log of segment files between the router and
//! the exporters. Every exporter reads it with its own durable cursor, so a slow or
//! down exporter only lags, and a restart resumes each exporter where it stopped.
//!
//! ```text
//! <path>/segments/<base seq>.seg   the log (see `segment` for the format)
//! <path>/cursors/<exporter>.cursor each exporter's acknowledged position
//! <path>/quarantine/               damaged bytes moved aside at recovery
//! ```

mod catalog;
pub(crate) mod codec;
pub(crate) mod cursor;
mod field_buffer;
pub(crate) mod fields;
mod inspect;
mod lock;
mod open;
mod read;
mod recover;
mod schema_cache;
pub(crate) mod segment;
mod writer;

pub use crate::config::{FsyncMode, SpoolConfig};

/// The largest event a receiver should take for a spooled pipeline, in
/// [`Event::approx_bytes`](crate::Event::approx_bytes): half of a spool record's
/// limit, leaving room for the encoding.
pub const MAX_EVENT_BYTES: usize = segment::MAX_PAYLOAD / 2;
use catalog::Catalog;
pub use codec::CodecError;
pub use field_buffer::{FieldBuffer, SharedFields, WrittenFields};
pub use inspect::{inspect, CursorInfo, SegmentInfo, SpoolInspection, SpoolReplay};
pub(crate) use read::ReadResume;
pub(crate) use recover::cursor_past_data;
pub(crate) use writer::Spool;

use crate::event::resource::Resource;
use crate::event::schema::Schema;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// An index entry every this many events, for seeking.
const INDEX_EVERY: u64 = 512;

/// What the pipeline knows about one segment.
#[derive(Debug, Clone)]
pub(crate) struct SegmentMeta {
    pub(crate) path: PathBuf,
    /// Its format (see `segment`): 1 names schemas by index, 2 by reference.
    pub(crate) version: u32,
    pub(crate) base_seq: u64,
    /// One past the last event seq in the file.
    pub(crate) next_seq: u64,
    /// Bytes of the file that hold committed records.
    pub(crate) bytes: u64,
    /// Format 1 only: by schema index (a schema record's `seq` field); `None` if
    /// unreadable.
    pub(crate) schemas: Vec<Option<Arc<Schema>>>,
    /// Format 1 only: the segment's resource record.
    pub(crate) resource: Option<Arc<Resource>>,
    /// (seq, offset) of every `INDEX_EVERY`-th event.
    pub(crate) index: Vec<(u64, u64)>,
}

/// Spool counters.
#[derive(Debug, Default)]
pub(crate) struct SpoolCounters {
    pub(crate) appended_events: AtomicU64,
    pub(crate) appended_bytes: AtomicU64,
    pub(crate) fsyncs: AtomicU64,
    pub(crate) replayed_events: AtomicU64,
    pub(crate) quarantined_bytes: AtomicU64,
    pub(crate) quarantined_regions: AtomicU64,
    pub(crate) bytes_on_disk: AtomicU64,
    pub(crate) segments: AtomicU64,
    pub(crate) oldest_seq: AtomicU64,
    /// Commits that failed (write, fsync or roll): a request whose events may have been
    /// in one is not acknowledged as durable.
    pub(crate) write_errors: AtomicU64,
    /// Events that cannot be delivered, by reason, found when the spool was opened.
    pub(crate) lost_damaged: AtomicU64,
    pub(crate) lost_missing: AtomicU64,
    pub(crate) lost_unreadable: AtomicU64,
}

/// What readers (exporter workers) share with the writer.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) segments: RwLock<Vec<SegmentMeta>>,
    /// Events with a smaller seq are in segment files and readable.
    pub(crate) written_seq: AtomicU64,
    pub(crate) counters: SpoolCounters,
    pub(crate) max_bytes: u64,
    /// The schemas and resources format-2 records refer to. Replaced, not changed in
    /// place, so a reader clones the `Arc` and holds no lock while it reads files.
    pub(crate) catalog: RwLock<Arc<Catalog>>,
}

/// A snapshot of the spool for stats and `usage spool inspect`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpoolStats {
    /// Directory.
    pub path: PathBuf,
    /// Segment files.
    pub segments: u64,
    /// Bytes of segment files.
    pub bytes: u64,
    /// The byte bound.
    pub max_bytes: u64,
    /// Oldest retained event seq.
    pub oldest_seq: u64,
    /// Next seq to be assigned; events below it are spooled.
    pub next_seq: u64,
    /// Events appended by this process.
    pub appended_events: u64,
    /// fsync calls by this process.
    pub fsyncs: u64,
    /// Events exporters read back from disk (catching up or after a restart).
    pub replayed_events: u64,
    /// Damaged bytes moved to quarantine (at recovery) or skipped (while reading).
    pub quarantined_bytes: u64,
    /// Damaged regions found.
    pub quarantined_regions: u64,
    /// Events found lost when the spool was opened, by reason (see [`RecoveryReport`]):
    /// in damaged records, in missing segments, behind schemas damaged in every copy.
    pub lost_damaged_events: u64,
    /// See `lost_damaged_events`.
    pub lost_missing_events: u64,
    /// See `lost_damaged_events`.
    pub lost_unreadable_events: u64,
}

impl Shared {
    pub(crate) fn stats(&self) -> SpoolStats {
        let c = &self.counters;
        SpoolStats {
            path: self.dir.clone(),
            segments: c.segments.load(Relaxed),
            bytes: c.bytes_on_disk.load(Relaxed),
            max_bytes: self.max_bytes,
            oldest_seq: c.oldest_seq.load(Relaxed),
            next_seq: self.written_seq.load(Relaxed),
            appended_events: c.appended_events.load(Relaxed),
            fsyncs: c.fsyncs.load(Relaxed),
            replayed_events: c.replayed_events.load(Relaxed),
            quarantined_bytes: c.quarantined_bytes.load(Relaxed),
            quarantined_regions: c.quarantined_regions.load(Relaxed),
            lost_damaged_events: c.lost_damaged.load(Relaxed),
            lost_missing_events: c.lost_missing.load(Relaxed),
            lost_unreadable_events: c.lost_unreadable.load(Relaxed),
        }
    }

    pub(crate) fn publish(&self, segments: &[SegmentMeta]) {
        let c = &self.counters;
        c.segments.store(segments.len() as u64, Relaxed);
        c.bytes_on_disk.store(segments.iter().map(|s| s.bytes).sum(), Relaxed);
        c.oldest_seq.store(segments.first().map_or(0, |s| s.base_seq), Relaxed);
    }

    pub(crate) fn lock_segments(&self) -> std::sync::RwLockReadGuard<'_, Vec<SegmentMeta>> {
        self.segments.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Adds a schema the writer refers to (a new kind in this process: rare).
    fn add_schema(&self, reference: u64, schema: &Schema) {
        if self.catalog().schema(reference).is_some() {
            return;
        }
        let mut guard = self.catalog.write().unwrap_or_else(|p| p.into_inner());
        let mut next = Catalog::clone(&guard);
        next.insert_schema(reference, Arc::new(schema.clone()));
        *guard = Arc::new(next);
    }

    pub(crate) fn lock_segments_mut(&self) -> std::sync::RwLockWriteGuard<'_, Vec<SegmentMeta>> {
        self.segments.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Segments read.
    pub segments: usize,
    /// Intact events kept.
    pub events: u64,
    /// Damaged bytes moved to `quarantine/`.
    pub quarantined_bytes: u64,
    /// Damaged regions.
    pub quarantined_regions: u64,
    /// Events missing between the segments (a segment deleted or emptied), counted
    /// from the sequence gaps. Events missing before the first segment are named per
    /// exporter when it starts (its cursor is below the oldest spooled event).
    pub missing_events: u64,
    /// Event records lost to damage inside a segment, counted from the gaps in its
    /// consecutive seqs. (Damage to a spool's very last record looks like a torn
    /// write and is counted in `quarantined_bytes` only.)
    pub damaged_events: u64,
    /// One past the last event in the segments (cursors not counted).
    pub data_end: u64,
    /// Intact event records that cannot be decoded because their kind's schema record
    /// in that segment is damaged (not delivered; counted and logged at WARN).
    pub unreadable_events: u64,
    /// Time taken.
    pub elapsed: Duration,
}

/// A spool that cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("spool {path}: {message}")]
pub struct SpoolError {
    /// The spool directory.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

#[cfg(test)]
mod damage_classes_tests;
#[cfg(test)]
mod damage_tests;
#[cfg(test)]
mod read_tests;
#[cfg(test)]
mod tests;
