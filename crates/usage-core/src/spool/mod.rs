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
pub(crate) mod cursor;
mod lock;
pub(crate) mod segment;

use crate::config::units;
use crate::event::schema::Schema;
use crate::event::Event;
use crate::resource::Resource;
use segment::{encode_record, parse_record, Header, Parsed, RecordType, HEADER_LEN};
use serde::Deserialize;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// When appended events are fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncMode {
    /// After every group commit, before any exporter sees the events.
    Batch,
    /// At most this long after an append.
    Interval(Duration),
    /// Never explicitly (the OS writes back on its own schedule).
    Never,
}

impl<'de> Deserialize<'de> for FsyncMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "batch" => Ok(FsyncMode::Batch),
            "never" => Ok(FsyncMode::Never),
            _ => match s.strip_prefix("interval:") {
                Some(rest) => units::parse_duration(rest)
                    .map(FsyncMode::Interval)
                    .map_err(serde::de::Error::custom),
                None => Err(serde::de::Error::custom(format!(
                    "invalid fsync mode {s:?}: expected \"batch\", \"interval:100ms\" or \"never\""
                ))),
            },
        }
    }
}

/// `[spool]`: the optional write-ahead log.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Directory of the spool.
    pub path: PathBuf,
    /// Bound on segment bytes on disk; when reached, the pipeline's full policy applies.
    #[serde(default = "default_max_bytes", deserialize_with = "units::bytes")]
    pub max_bytes: usize,
    /// `"batch"` (default), `"interval:100ms"` or `"never"`.
    #[serde(default = "default_fsync")]
    pub fsync: FsyncMode,
    /// Segment file size before rolling to a new one.
    #[serde(default = "default_segment_bytes", deserialize_with = "units::bytes")]
    pub segment_bytes: usize,
}

fn default_max_bytes() -> usize {
    1 << 30
}
fn default_fsync() -> FsyncMode {
    FsyncMode::Batch
}
fn default_segment_bytes() -> usize {
    64 << 20
}

impl SpoolConfig {
    /// A spool at `path` with the defaults (1 GiB, fsync per batch, 64 MiB segments).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SpoolConfig {
            path: path.into(),
            max_bytes: default_max_bytes(),
            fsync: default_fsync(),
            segment_bytes: default_segment_bytes(),
        }
    }
}

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

    fn publish(&self, segments: &[SegmentMeta]) {
        let c = &self.counters;
        c.segments.store(segments.len() as u64, Relaxed);
        c.bytes_on_disk.store(segments.iter().map(|s| s.bytes).sum(), Relaxed);
        c.oldest_seq.store(segments.first().map_or(0, |s| s.base_seq), Relaxed);
    }

    fn lock_segments(&self) -> std::sync::RwLockReadGuard<'_, Vec<SegmentMeta>> {
        self.segments.read().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_segments_mut(&self) -> std::sync::RwLockWriteGuard<'_, Vec<SegmentMeta>> {
        self.segments.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads events with `from <= seq < to` whose kind `wants` accepts, up to
    /// `max_events`/`max_bytes`. Returns the events and the seq to continue from.
    pub(crate) fn read(
        &self,
        from: u64,
        to: u64,
        max_events: usize,
        max_bytes: usize,
        wants: &dyn Fn(&str) -> bool,
    ) -> std::io::Result<(Vec<Event>, u64)> {
        let metas: Vec<SegmentMeta> = self
            .lock_segments()
            .iter()
            .filter(|s| s.next_seq > from && s.base_seq < to)
            .cloned()
            .collect();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut pos = from;
        for seg in metas {
            pos = pos.max(seg.base_seq);
            let start = seg
                .index
                .iter()
                .rev()
                .find(|(s, _)| *s <= pos)
                .map_or(HEADER_LEN as u64, |(_, o)| *o);
            let mut file = match File::open(&seg.path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            file.seek(SeekFrom::Start(start))?;
            let mut remaining = seg.bytes.saturating_sub(start);
            let mut buf: Vec<u8> = Vec::new();
            let mut at = 0usize;
            loop {
                // Refill: keep the unparsed tail, read up to 1 MiB more.
                if at > 0 {
                    buf.drain(..at);
                    at = 0;
                }
                let want = remaining.min(1 << 20) as usize;
                if want > 0 {
                    let old = buf.len();
                    buf.resize(old + want, 0);
                    file.read_exact(&mut buf[old..])?;
                    remaining -= want as u64;
                }
                let mut progressed = false;
                while at < buf.len() {
                    match parse_record(&buf, at) {
                        Parsed::Record(r) => {
                            progressed = true;
                            at = r.end();
                            if r.ty != RecordType::Event || r.seq < pos {
                                continue;
                            }
                            if r.seq >= to {
                                return Ok((out, to));
                            }
                            let payload = &buf[r.payload.clone()];
                            let kind_ok = payload
                                .get(..2)
                                .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
                                .and_then(|i| seg.schemas.get(i).and_then(Option::as_ref))
                                .is_some_and(|s| wants(&s.kind));
                            pos = r.seq + 1;
                            if !kind_ok {
                                continue;
                            }
                            match codec::decode_event(payload, &seg.schemas, seg.resource.as_ref()) {
                                Ok(e) => {
                                    bytes += e.approx_bytes();
                                    out.push(e);
                                }
                                Err(err) => {
                                    self.counters.quarantined_regions.fetch_add(1, Relaxed);
                                    self.counters
                                        .quarantined_bytes
                                        .fetch_add(r.payload.len() as u64, Relaxed);
                                    tracing::error!(segment = %seg.path.display(), seq = r.seq, "undecodable spooled event skipped: {err}");
                                }
                            }
                            if out.len() >= max_events || bytes >= max_bytes {
                                self.counters.replayed_events.fetch_add(out.len() as u64, Relaxed);
                                return Ok((out, pos));
                            }
                        }
                        Parsed::Incomplete if remaining > 0 => break,
                        Parsed::Incomplete | Parsed::Invalid => {
                            // Damage found while reading (it was intact at recovery): skip to
                            // the next intact record and count it.
                            let skip_to = (at + 1..buf.len())
                                .find(|p| matches!(parse_record(&buf, *p), Parsed::Record(_)))
                                .unwrap_or(buf.len());
                            self.counters.quarantined_regions.fetch_add(1, Relaxed);
                            self.counters
                                .quarantined_bytes
                                .fetch_add((skip_to - at) as u64, Relaxed);
                            tracing::error!(segment = %seg.path.display(), offset = start + at as u64, "damaged spool bytes skipped while reading");
                            progressed = true;
                            at = skip_to;
                        }
                    }
                }
                if remaining == 0 || !progressed && want == 0 {
                    break;
                }
            }
            pos = pos.max(seg.next_seq.min(to));
        }
        self.counters.replayed_events.fetch_add(out.len() as u64, Relaxed);
        Ok((out, pos.max(to.min(self.written_seq.load(Relaxed)))))
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

/// Events absent between consecutive segments. Segments are only deleted from the
/// oldest end, once every exporter is past them, so a gap in the middle is loss.
fn gaps_between(metas: &[SegmentMeta]) -> u64 {
    metas
        .windows(2)
        .map(|pair| pair[1].base_seq.saturating_sub(pair[0].next_seq))
        .sum()
}

/// Whether a stored cursor cannot be an acknowledgement: it is past the end of the
/// spooled data (an exporter only acknowledges what was written) while data remains.
/// The pipeline re-delivers from the oldest event instead; `inspect` calls it damaged.
pub(crate) fn cursor_past_data(seq: u64, data_end: u64, oldest: u64) -> bool {
    seq > data_end && data_end > oldest
}

/// Scans one segment file; quarantines damage and rewrites the file with only its
/// intact records. `Ok(None)` when nothing usable remains (the file is removed).
fn recover_segment(
    dir: &Path,
    path: &Path,
    report: &mut RecoveryReport,
    dry_run: bool,
) -> std::io::Result<Option<SegmentMeta>> {
    let bytes = std::fs::read(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The name is the base seq: a damaged header is rebuilt from it.
    let named_base = name.strip_suffix(".seg").and_then(|n| n.parse::<u64>().ok());
    let s = segment::scan_with(&bytes, named_base);
    if !s.damaged.is_empty() {
        let mut damaged = Vec::new();
        for r in &s.damaged {
            damaged.extend_from_slice(&bytes[r.clone()]);
            report.quarantined_regions += 1;
        }
        report.quarantined_bytes += damaged.len() as u64;
        if dry_run {
            return match s.header {
                Some(_) => build_meta(path, &bytes, &s, report, None).map(Some),
                None => Ok(None),
            };
        }
        let q = dir
            .join("quarantine")
            .join(format!("{name}.{}.bin", crate::Timestamp::now().as_micros()));
        crate::fs::write_atomic(&q, &damaged)?;
        tracing::error!(
            segment = %path.display(), bytes = damaged.len(), regions = s.damaged.len(), quarantine = %q.display(),
            "damaged spool bytes quarantined{}", s.header_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        );
    }
    let Some(header) = s.header else {
        if !dry_run {
            std::fs::remove_file(path)?;
        }
        return Ok(None);
    };
    let clean = if s.damaged.is_empty() || dry_run {
        None
    } else {
        Some(header.encode().to_vec())
    };
    build_meta(path, &bytes, &s, report, clean).map(Some)
}

/// Builds a segment's metadata from a scan; with `clean`, also rebuilds the file
/// from its intact records only and writes it in place.
fn build_meta(
    path: &Path,
    bytes: &[u8],
    s: &segment::Scan,
    report: &mut RecoveryReport,
    mut clean: Option<Vec<u8>>,
) -> std::io::Result<SegmentMeta> {
    let Some(header) = s.header else {
        return Err(std::io::Error::other("segment without header"));
    };
    let mut meta = SegmentMeta {
        path: path.to_path_buf(),
        base_seq: header.base_seq,
        next_seq: header.base_seq,
        bytes: 0,
        schemas: Vec::new(),
        resource: None,
        index: Vec::new(),
    };
    // Events whose kind's schema record is damaged cannot be decoded: counted.
    let mut schemaless = 0u64;
    for r in &s.records {
        let payload = &bytes[r.payload.clone()];
        let offset = clean.as_ref().map_or(r.offset as u64, |c| c.len() as u64);
        let keep = match r.ty {
            RecordType::Schema => match codec::decode_schema(payload) {
                Ok(schema) if r.seq < u64::from(u16::MAX) => {
                    let i = r.seq as usize;
                    if meta.schemas.len() <= i {
                        meta.schemas.resize(i + 1, None);
                    }
                    meta.schemas[i] = Some(Arc::new(schema));
                    true
                }
                Ok(_) => false,
                Err(e) => {
                    tracing::error!(segment = %path.display(), "unreadable schema record: {e}");
                    false
                }
            },
            RecordType::Resource => match codec::decode_resource(payload) {
                Ok(res) => {
                    meta.resource = Some(Arc::new(res));
                    true
                }
                Err(_) => false,
            },
            RecordType::Event => {
                if r.seq < meta.next_seq && r.seq != header.base_seq {
                    false // out of order: not something we wrote
                } else {
                    if (r.seq - header.base_seq) % INDEX_EVERY == 0 || meta.index.is_empty() {
                        meta.index.push((r.seq, offset));
                    }
                    meta.next_seq = r.seq + 1;
                    report.events += 1;
                    // Its kind's schema record (written before it) is damaged: undecodable.
                    let kind = payload.get(..2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
                    if kind.is_none_or(|i| meta.schemas.get(i).is_none_or(Option::is_none)) {
                        schemaless += 1;
                    }
                    true
                }
            }
        };
        if let (true, Some(c)) = (keep, clean.as_mut()) {
            c.extend_from_slice(&bytes[r.offset..r.end()]);
        }
    }
    if schemaless > 0 {
        report.unreadable_events += schemaless;
        tracing::warn!(
            segment = %path.display(), events = schemaless,
            "spooled events whose schema record is damaged cannot be decoded and will not be delivered"
        );
    }
    meta.bytes = match clean {
        Some(c) => {
            crate::fs::write_atomic(path, &c)?;
            c.len() as u64
        }
        None => bytes.len() as u64,
    };
    Ok(meta)
}

/// One segment as `inspect` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
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
pub struct SpoolInspection {
    /// The pid of the process writing to this spool now, if one is.
    pub writer_pid: Option<u32>,
    /// Events missing between segments (see [`RecoveryReport::missing_events`]).
    pub missing_events: u64,
    /// Events whose schema record is damaged (see [`RecoveryReport::unreadable_events`]).
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
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir.join("segments"))
        .map_err(|e| fail(format!("cannot list segments: {e}")))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    names.sort();
    let mut inspection = SpoolInspection {
        writer_pid: lock::DirLock::holder(dir),
        ..Default::default()
    };
    let mut metas = Vec::new();
    for path in names {
        let mut report = RecoveryReport::default();
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        match recover_segment(dir, &path, &mut report, true) {
            Ok(Some(meta)) => {
                inspection.unreadable_events += report.unreadable_events;
                inspection.end_seq = inspection.end_seq.max(meta.next_seq);
                inspection.segments.push(SegmentInfo {
                    file,
                    base_seq: meta.base_seq,
                    next_seq: meta.next_seq,
                    events: report.events,
                    bytes,
                    damaged_bytes: report.quarantined_bytes,
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
            let (events, next) = self.shared.read(self.pos, self.end, max_events, usize::MAX, wants)?;
            self.pos = next.max(self.pos + u64::from(events.is_empty() && next == self.pos));
            if !events.is_empty() {
                return Ok(events);
            }
        }
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests;
