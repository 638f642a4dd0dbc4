//! Read-only views of a spool: `usage spool inspect` and `usage spool replay`.

use super::recover::{cursor_past_data, gaps_between, segment_files, Recovery};
use super::{cursor, lock, Shared, SpoolCounters, SpoolError};
use crate::event::Event;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

/// One segment as `inspect` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// File name.
    pub file: String,
    /// First seq it was created at.
    pub base_seq: u64,
    /// One past its last event's seq.
    pub next_seq: u64,
    /// Intact events.
    pub events: u64,
    /// File size.
    pub bytes: u64,
    /// Bytes that are not intact records.
    pub damaged_bytes: u64,
}

/// One exporter's cursor as `inspect` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CursorInfo {
    /// Exporter instance name.
    pub exporter: String,
    /// Its acknowledged position, or why it cannot be read.
    pub seq: Result<u64, String>,
    /// Events after the cursor (all kinds).
    pub lag: u64,
}

/// A read-only look at a spool directory (`usage spool inspect`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpoolInspection {
    /// The pid of the process writing to this spool now, if one is.
    pub writer_pid: Option<u32>,
    /// Events missing between segments (see [`RecoveryReport::missing_events`](super::RecoveryReport::missing_events)).
    pub missing_events: u64,
    /// Event records lost to damage (see [`RecoveryReport::damaged_events`](super::RecoveryReport::damaged_events)).
    pub damaged_events: u64,
    /// Events whose schema record is damaged (see [`RecoveryReport::unreadable_events`](super::RecoveryReport::unreadable_events)).
    pub unreadable_events: u64,
    /// Segments, oldest first.
    pub segments: Vec<SegmentInfo>,
    /// Exporter cursors, by name.
    pub cursors: Vec<CursorInfo>,
    /// Bytes already moved to `quarantine/`.
    pub quarantined_bytes: u64,
    /// Files in `quarantine/`.
    pub quarantined_files: u64,
    /// One past the last spooled event.
    pub end_seq: u64,
}

/// Opens a spool without changing anything: no new segment, no quarantine moves.
pub(crate) fn open_read_only(dir: &Path) -> Result<(Arc<Shared>, SpoolInspection), SpoolError> {
    let fail = |message: String| SpoolError {
        path: dir.to_path_buf(),
        message,
    };
    if !dir.join("segments").is_dir() {
        return Err(fail("no segments/ directory: not a spool".into()));
    }
    let names = segment_files(dir).map_err(|e| fail(format!("cannot list segments: {e}")))?;
    let mut inspection = SpoolInspection {
        writer_pid: lock::DirLock::holder(dir),
        ..Default::default()
    };
    let mut metas = Vec::new();
    let mut recovery = Recovery::new(dir, true);
    for path in names {
        let (events_before, damaged_before) = (recovery.report.events, recovery.report.quarantined_bytes);
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        match recovery.segment(&path) {
            Ok(Some(meta)) => {
                inspection.end_seq = inspection.end_seq.max(meta.next_seq);
                inspection.segments.push(SegmentInfo {
                    file,
                    base_seq: meta.base_seq,
                    next_seq: meta.next_seq,
                    events: recovery.report.events - events_before,
                    bytes,
                    damaged_bytes: recovery.report.quarantined_bytes - damaged_before,
                });
                metas.push(meta);
            }
            Ok(None) => inspection.segments.push(SegmentInfo {
                file,
                base_seq: 0,
                next_seq: 0,
                events: 0,
                bytes,
                damaged_bytes: bytes,
            }),
            Err(e) => return Err(fail(format!("{}: {e}", path.display()))),
        }
    }
    let (report, catalog) = recovery.finish();
    inspection.unreadable_events = report.unreadable_events;
    inspection.damaged_events = report.damaged_events;
    let data_end = inspection.end_seq;
    let oldest = metas.first().map_or(data_end, |m| m.base_seq);
    for entry in std::fs::read_dir(dir.join("cursors")).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(exporter) = name.strip_suffix(".cursor") else {
            continue;
        };
        let seq = match cursor::load(&entry.path()) {
            cursor::Loaded::Seq(s) if cursor_past_data(s, data_end, oldest) => Err(format!(
                "{s} is past the end of the spooled data ({data_end}): damaged; delivery restarts at {oldest}"
            )),
            cursor::Loaded::Seq(s) => Ok(s),
            cursor::Loaded::Missing => continue,
            cursor::Loaded::Garbage(why) => Err(why),
        };
        inspection.end_seq = inspection.end_seq.max(*seq.as_ref().unwrap_or(&0));
        inspection.cursors.push(CursorInfo {
            exporter: exporter.to_string(),
            seq,
            lag: 0,
        });
    }
    let end = inspection.end_seq;
    for c in &mut inspection.cursors {
        c.lag = c
            .seq
            .as_ref()
            .map_or(data_end.saturating_sub(oldest), |s| end.saturating_sub(*s));
    }
    inspection.missing_events = gaps_between(&metas);
    inspection.cursors.sort_by(|a, b| a.exporter.cmp(&b.exporter));
    for entry in std::fs::read_dir(dir.join("quarantine"))
        .into_iter()
        .flatten()
        .flatten()
    {
        inspection.quarantined_files += 1;
        inspection.quarantined_bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
    }
    let shared = Arc::new(Shared {
        dir: dir.to_path_buf(),
        segments: RwLock::new(Vec::new()),
        written_seq: AtomicU64::new(end),
        counters: SpoolCounters::default(),
        max_bytes: u64::MAX,
        catalog: RwLock::new(Arc::new(catalog)),
    });
    shared.publish(&metas);
    *shared.lock_segments_mut() = metas;
    Ok((shared, inspection))
}

/// Looks at a spool directory without changing it.
pub fn inspect(dir: &Path) -> Result<SpoolInspection, SpoolError> {
    open_read_only(dir).map(|(_, i)| i)
}

/// Reads spooled events `from..` (up to `max_events` per call) without changing the
/// spool, for replaying them to an exporter. Returns the events and where to continue.
pub struct SpoolReplay {
    shared: Arc<Shared>,
    pos: u64,
    end: u64,
    resume: Option<super::ReadResume>,
}

impl SpoolReplay {
    /// Opens `dir` read-only, starting at `from` (clamped to what is retained).
    pub fn open(dir: &Path, from: u64) -> Result<SpoolReplay, SpoolError> {
        let (shared, inspection) = open_read_only(dir)?;
        let oldest = inspection
            .segments
            .iter()
            .filter(|s| s.events > 0)
            .map(|s| s.base_seq)
            .min()
            .unwrap_or(0);
        Ok(SpoolReplay {
            shared,
            pos: from.max(oldest),
            end: inspection.end_seq,
            resume: None,
        })
    }

    /// The next position to read.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// One past the last spooled event.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// The next events (at most `max_events`) whose kind `wants` accepts; empty at the end.
    pub fn next_events(&mut self, max_events: usize, wants: &dyn Fn(&str) -> bool) -> std::io::Result<Vec<Event>> {
        while self.pos < self.end {
            let (events, next) =
                self.shared
                    .read_resuming(self.pos, self.end, max_events, usize::MAX, wants, &mut self.resume)?;
            self.pos = next.max(self.pos + u64::from(events.is_empty() && next == self.pos));
            if !events.is_empty() {
                return Ok(events);
            }
        }
        Ok(Vec::new())
    }
}
