//! The crash-safe spool: a write-ahead log of segment files between the router and
//! the exporters. Every exporter reads it with its own durable cursor, so a slow or
//! down exporter only lags, and a restart resumes each exporter where it stopped.
//!
//! ```text
//! <path>/segments/<base seq>.seg   the log (see `segment` for the format)
//! <path>/cursors/<exporter>.cursor each exporter's acknowledged position
//! <path>/quarantine/               damaged bytes moved aside at recovery
//! ```

pub(crate) mod codec;
mod config;
pub(crate) mod cursor;
mod inspect;
mod lock;
mod read;
mod recover;
pub(crate) mod segment;

pub use config::{FsyncMode, SpoolConfig};
pub use inspect::{inspect, CursorInfo, SegmentInfo, SpoolInspection, SpoolReplay};
pub(crate) use recover::cursor_past_data;
use recover::{gaps_between, recover_segment};

use crate::event::schema::Schema;
use crate::event::Event;
use crate::resource::Resource;
use segment::{encode_record, Header, RecordType};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// An index entry every this many events, for seeking.
const INDEX_EVERY: u64 = 512;

/// What the pipeline knows about one segment.
#[derive(Debug, Clone)]
pub(crate) struct SegmentMeta {
    pub(crate) path: PathBuf,
    pub(crate) base_seq: u64,
    /// One past the last event seq in the file.
    pub(crate) next_seq: u64,
    /// Bytes of the file that hold committed records.
    pub(crate) bytes: u64,
    /// By schema index (a schema record's `seq` field); `None` if unreadable.
    pub(crate) schemas: Vec<Option<Arc<Schema>>>,
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
}

/// A snapshot of the spool for stats and `usage spool inspect`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

    pub(crate) fn lock_segments_mut(&self) -> std::sync::RwLockWriteGuard<'_, Vec<SegmentMeta>> {
        self.segments.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The open segment being appended to.
struct Active {
    file: File,
    kinds: HashMap<String, u16>,
    /// Bytes in the file (committed).
    bytes: u64,
}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// One past the last event in the segments (cursors not counted).
    pub data_end: u64,
    /// Intact event records that cannot be decoded because their kind's schema record
    /// in that segment is damaged (not delivered; counted and logged at WARN).
    pub unreadable_events: u64,
    /// Time taken.
    pub elapsed: Duration,
}

/// The writer side, owned by the router.
pub(crate) struct Spool {
    /// Held until shutdown (or drop): one writer per directory.
    lock: Option<lock::DirLock>,
    cfg: SpoolConfig,
    pub(crate) shared: Arc<Shared>,
    resource: Arc<Resource>,
    active: Option<Active>,
    next_seq: u64,
    buf: Vec<u8>,
    scratch: Vec<u8>,
    pending_index: Vec<(u64, u64)>,
    last_sync: Instant,
    unsynced: bool,
    /// A write made while appending failed: the next commit reports it.
    deferred_error: Option<std::io::Error>,
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

fn segment_name(base_seq: u64) -> String {
    format!("{base_seq:020}.seg")
}

impl Spool {
    /// Opens (creating if needed) and recovers the spool: every intact record is
    /// kept, damaged bytes go to `quarantine/` and are counted.
    pub(crate) fn open(cfg: SpoolConfig, resource: Arc<Resource>) -> Result<(Spool, RecoveryReport), SpoolError> {
        let spool_path = cfg.path.clone();
        let fail = |message: String| SpoolError {
            path: spool_path.clone(),
            message,
        };
        let start = Instant::now();
        std::fs::create_dir_all(&cfg.path).map_err(|e| fail(format!("cannot create the directory: {e}")))?;
        // Before anything is read or changed: another writer's files are not ours to recover.
        let dir_lock = lock::DirLock::acquire(&cfg.path).map_err(fail)?;
        for sub in ["segments", "cursors", "quarantine"] {
            std::fs::create_dir_all(cfg.path.join(sub)).map_err(|e| fail(format!("cannot create {sub}/: {e}")))?;
        }
        let mut names: Vec<PathBuf> = std::fs::read_dir(cfg.path.join("segments"))
            .map_err(|e| fail(format!("cannot list segments: {e}")))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "seg"))
            .collect();
        names.sort();
        let shared = Arc::new(Shared {
            dir: cfg.path.clone(),
            segments: RwLock::new(Vec::new()),
            written_seq: AtomicU64::new(0),
            counters: SpoolCounters::default(),
            max_bytes: cfg.max_bytes as u64,
        });
        let mut report = RecoveryReport::default();
        let mut metas = Vec::new();
        let mut next_seq = 0u64;
        for path in names {
            report.segments += 1;
            match recover_segment(&cfg.path, &path, &mut report, false) {
                Ok(Some(meta)) if meta.next_seq == meta.base_seq => {
                    // No events: only its position matters, and that is kept in next_seq.
                    next_seq = next_seq.max(meta.base_seq);
                    let _ = std::fs::remove_file(&meta.path);
                }
                Ok(Some(meta)) => {
                    next_seq = next_seq.max(meta.next_seq);
                    metas.push(meta);
                }
                Ok(None) => {}
                Err(e) => return Err(fail(format!("{}: {e}", path.display()))),
            }
        }
        report.data_end = next_seq;
        // Never reuse a seq an exporter has acknowledged, even if its segments are gone.
        for entry in std::fs::read_dir(cfg.path.join("cursors"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let cursor::Loaded::Seq(s) = cursor::load(&entry.path()) {
                next_seq = next_seq.max(s);
            }
        }
        report.missing_events = gaps_between(&metas);
        if report.missing_events > 0 {
            tracing::warn!(
                spool = %cfg.path.display(), events = report.missing_events,
                "spool segments are MISSING: events some exporter had not delivered are gone (a segment was deleted or emptied)"
            );
        }
        shared
            .counters
            .quarantined_bytes
            .store(report.quarantined_bytes, Relaxed);
        shared
            .counters
            .quarantined_regions
            .store(report.quarantined_regions, Relaxed);
        shared.written_seq.store(next_seq, Relaxed);
        shared.publish(&metas);
        *shared.lock_segments_mut() = metas;
        report.elapsed = start.elapsed();
        if report.quarantined_bytes > 0 {
            tracing::error!(
                spool = %cfg.path.display(), bytes = report.quarantined_bytes, regions = report.quarantined_regions,
                "spool recovery found DAMAGED data; intact records kept, damaged bytes moved to quarantine/"
            );
        }
        let mut spool = Spool {
            lock: Some(dir_lock),
            cfg,
            shared,
            resource,
            active: None,
            next_seq,
            buf: Vec::with_capacity(1 << 20),
            scratch: Vec::with_capacity(1024),
            pending_index: Vec::new(),
            last_sync: Instant::now(),
            unsynced: false,
            deferred_error: None,
        };
        spool
            .roll()
            .map_err(|e| fail(format!("cannot create a segment: {e}")))?;
        Ok((spool, report))
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Lets another process open the directory: called at shutdown, after the last
    /// sync, since a shut-down pipeline may live on as a value.
    pub(crate) fn unlock(&mut self) {
        self.lock = None;
    }

    /// True when the segments hold `max_bytes` or more.
    pub(crate) fn is_full(&self) -> bool {
        self.shared.counters.bytes_on_disk.load(Relaxed) + self.buf.len() as u64 >= self.cfg.max_bytes as u64
    }

    /// Starts a new segment at `next_seq` (the previous one is synced and sealed).
    /// The previous segment stays active until the new one exists: a failed roll
    /// leaves the spool writable, and the next commit tries again.
    fn roll(&mut self) -> std::io::Result<()> {
        if let Some(old) = self.active.as_ref() {
            old.file.sync_data()?;
        }
        let path = self.cfg.path.join("segments").join(segment_name(self.next_seq));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)?;
        let mut head = Header {
            base_seq: self.next_seq,
            created_micros: crate::Timestamp::now().as_micros(),
        }
        .encode()
        .to_vec();
        let mut payload = Vec::new();
        codec::encode_resource(&mut payload, &self.resource);
        encode_record(&mut head, RecordType::Resource, 0, &payload);
        file.write_all(&head)?;
        file.sync_all()?;
        crate::fs::sync_dir(&self.cfg.path.join("segments"))?;
        let meta = SegmentMeta {
            path,
            base_seq: self.next_seq,
            next_seq: self.next_seq,
            bytes: head.len() as u64,
            schemas: Vec::new(),
            resource: Some(self.resource.clone()),
            index: Vec::new(),
        };
        let mut segs = self.shared.lock_segments_mut();
        segs.push(meta);
        self.shared.publish(&segs);
        drop(segs);
        self.active = Some(Active {
            file,
            kinds: HashMap::new(),
            bytes: head.len() as u64,
        });
        Ok(())
    }

    /// Buffers events of one kind; returns the seq of the first. Nothing is
    /// written until [`commit`](Spool::commit).
    pub(crate) fn append(&mut self, events: &[Event]) -> u64 {
        let first = self.next_seq;
        // After a failed write, the rest of this append waits for the commit.
        let mut failed = false;
        for e in events {
            // Keep segments near `segment_bytes` (a damaged schema record costs at most
            // one segment): write what is buffered and roll before the segment outgrows it.
            let over = self
                .active
                .as_ref()
                .is_some_and(|a| a.bytes + self.buf.len() as u64 >= self.cfg.segment_bytes as u64);
            if over && !failed {
                if let Err(err) = self.commit_buffered() {
                    failed = true;
                    self.deferred_error.get_or_insert(err);
                }
            }
            let Some(active) = self.active.as_mut() else {
                return first;
            };
            let idx = match active.kinds.get(e.kind()) {
                Some(i) => *i,
                None => {
                    let i = active.kinds.len() as u16;
                    self.scratch.clear();
                    codec::encode_schema(&mut self.scratch, e.schema());
                    encode_record(&mut self.buf, RecordType::Schema, u64::from(i), &self.scratch);
                    active.kinds.insert(e.kind().to_string(), i);
                    let mut segs = self.shared.lock_segments_mut();
                    if let Some(last) = segs.last_mut() {
                        last.schemas.push(Some(Arc::new(e.schema().clone())));
                    }
                    i
                }
            };
            if self.next_seq.is_multiple_of(INDEX_EVERY) {
                self.pending_index
                    .push((self.next_seq, active.bytes + self.buf.len() as u64));
            }
            self.scratch.clear();
            codec::encode_event(&mut self.scratch, idx, e);
            encode_record(&mut self.buf, RecordType::Event, self.next_seq, &self.scratch);
            self.next_seq += 1;
        }
        first
    }

    /// Writes buffered records, fsyncs as the mode says, makes them readable. An
    /// error of a write made while appending is returned here too.
    pub(crate) fn commit(&mut self) -> std::io::Result<()> {
        let result = self.commit_buffered();
        match self.deferred_error.take() {
            Some(e) => Err(e),
            None => result,
        }
    }

    fn commit_buffered(&mut self) -> std::io::Result<()> {
        let Some(active) = self.active.as_mut() else {
            return Ok(());
        };
        if !self.buf.is_empty() {
            if let Err(e) = active.file.write_all(&self.buf) {
                // All or nothing: cut a partial write off and keep the buffer for the
                // next commit, so offsets and the index stay true.
                let _ = active.file.set_len(active.bytes);
                let _ = active.file.seek(SeekFrom::Start(active.bytes));
                return Err(e);
            }
            active.bytes += self.buf.len() as u64;
            let c = &self.shared.counters;
            c.appended_bytes.fetch_add(self.buf.len() as u64, Relaxed);
            self.buf.clear();
            self.unsynced = true;
        }
        let sync = self.unsynced
            && match self.cfg.fsync {
                FsyncMode::Batch => true,
                FsyncMode::Interval(d) => self.last_sync.elapsed() >= d,
                FsyncMode::Never => false,
            };
        if sync {
            active.file.sync_data()?;
            self.shared.counters.fsyncs.fetch_add(1, Relaxed);
            self.last_sync = Instant::now();
            self.unsynced = false;
        }
        let appended = self.next_seq - self.shared.written_seq.load(Relaxed);
        {
            let mut segs = self.shared.lock_segments_mut();
            if let Some(last) = segs.last_mut() {
                last.next_seq = self.next_seq;
                last.bytes = active.bytes;
                last.index.append(&mut self.pending_index);
            }
            self.shared.publish(&segs);
        }
        self.shared.counters.appended_events.fetch_add(appended, Relaxed);
        self.shared.written_seq.store(self.next_seq, Relaxed);
        if active.bytes >= self.cfg.segment_bytes as u64 {
            // The records are durable in this segment already: a failed roll is not a
            // failed commit. The segment stays active and the next commit rolls again.
            if let Err(e) = self.roll() {
                tracing::warn!(spool = %self.cfg.path.display(), "cannot start a new spool segment, will retry: {e}");
            }
        }
        Ok(())
    }

    /// In interval mode, fsyncs once the interval has passed since the last one.
    pub(crate) fn sync_if_due(&mut self) -> std::io::Result<()> {
        match self.cfg.fsync {
            FsyncMode::Interval(d) if self.last_sync.elapsed() >= d => self.sync(),
            _ => Ok(()),
        }
    }

    /// Forces an fsync of anything written (interval mode's timer, and shutdown).
    pub(crate) fn sync(&mut self) -> std::io::Result<()> {
        if let (true, Some(a)) = (self.unsynced, self.active.as_mut()) {
            a.file.sync_data()?;
            self.shared.counters.fsyncs.fetch_add(1, Relaxed);
            self.last_sync = Instant::now();
            self.unsynced = false;
        }
        Ok(())
    }

    /// Deletes sealed segments every exporter has finished (all seqs below `min_ack`).
    pub(crate) fn gc(&mut self, min_ack: u64) {
        let mut segs = self.shared.lock_segments_mut();
        let n = segs.len();
        let mut removed = 0;
        // The last segment is the active one and always stays.
        while segs.len() > 1 && segs[0].next_seq <= min_ack {
            let seg = segs.remove(0);
            match std::fs::remove_file(&seg.path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => removed += 1,
                Err(e) => {
                    tracing::error!(segment = %seg.path.display(), "cannot delete a finished spool segment: {e}");
                    segs.insert(0, seg);
                    break;
                }
            }
        }
        if removed > 0 {
            self.shared.publish(&segs);
            tracing::debug!(removed, kept = n - removed, "spool segments deleted");
        }
    }
}

#[cfg(test)]
mod tests;
