//! The writer side: appends, group commits, rolls and seals segments, deletes
//! finished ones. Owned by the router thread.

use super::catalog::fingerprint;
use super::schema_cache::SchemaCache;
use super::segment::{encode_record, encode_record_with, record_seed, Header, RecordType, FORMAT_VERSION};
use super::{codec, lock, FsyncMode, SegmentMeta, Shared, SpoolConfig, INDEX_EVERY};
use crate::event::Event;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The open segment being appended to.
pub(super) struct Active {
    file: File,
    /// The checksum seed of its records.
    seed: u32,
    /// The schema records in this segment: reference and payload (written again
    /// when the segment is sealed).
    schema_payloads: Vec<(u64, Vec<u8>)>,
    /// The references of the schemas last appended.
    schemas: SchemaCache,
    /// Bytes in the file (committed).
    bytes: u64,
}

/// The writer side, owned by the router.
pub(crate) struct Spool {
    /// Held until shutdown (or drop): one writer per directory.
    pub(super) lock: Option<lock::DirLock>,
    pub(super) cfg: SpoolConfig,
    pub(crate) shared: Arc<Shared>,
    /// The encoded resource of events without their own, and its reference.
    pub(super) resource_payload: Vec<u8>,
    pub(super) resource_ref: u64,
    pub(super) active: Option<Active>,
    pub(super) next_seq: u64,
    pub(super) buf: Vec<u8>,
    pub(super) pending_index: Vec<(u64, u64)>,
    pub(super) last_sync: Instant,
    pub(super) unsynced: bool,
    /// A write made while appending failed: the next commit reports it.
    pub(super) deferred_error: Option<std::io::Error>,
    /// After a failed write, until the next commit: appends buffer nothing (the
    /// router refuses every event not committed).
    pub(super) refusing: bool,
    /// Schema records of the active segment still in `buf`, by reference.
    pub(super) uncommitted_schemas: Vec<u64>,
    /// The active segment could not be cut back after a failed write: its tail is
    /// unknown, so the next commit starts a new segment first.
    pub(super) abandon_active: bool,
    /// After a failed roll: no new attempt before this (the segment grows meanwhile),
    /// so a persistent error costs one attempt and one log line per interval.
    pub(super) roll_retry_at: Option<Instant>,
}

/// How long a failed segment roll waits before the next attempt.
const ROLL_RETRY: Duration = Duration::from_millis(500);

pub(crate) fn segment_name(base_seq: u64) -> String {
    format!("{base_seq:020}.seg")
}

impl Spool {
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
    pub(super) fn roll(&mut self) -> std::io::Result<()> {
        if self.abandon_active {
            // Its tail is unknown: no trailer; recovery quarantines whatever is there.
            if let Some(old) = self.active.as_ref() {
                let _ = old.file.sync_data();
            }
        } else {
            self.seal()?;
        }
        let path = self.cfg.path.join("segments").join(segment_name(self.next_seq));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)?;
        let mut head = Header {
            version: FORMAT_VERSION,
            base_seq: self.next_seq,
            created_micros: crate::Timestamp::now().as_micros(),
        }
        .encode()
        .to_vec();
        let seed = record_seed(FORMAT_VERSION, self.next_seq);
        encode_record(
            &mut head,
            seed,
            RecordType::Resource,
            self.resource_ref,
            &self.resource_payload,
        );
        file.write_all(&head)?;
        file.sync_all()?;
        crate::fs::sync_dir(&self.cfg.path.join("segments"))?;
        let meta = SegmentMeta {
            path,
            version: FORMAT_VERSION,
            base_seq: self.next_seq,
            next_seq: self.next_seq,
            bytes: head.len() as u64,
            schemas: Vec::new(),
            resource: None,
            index: Vec::new(),
        };
        let mut segs = self.shared.lock_segments_mut();
        segs.push(meta);
        self.shared.publish(&segs);
        drop(segs);
        self.active = Some(Active {
            file,
            seed,
            schema_payloads: Vec::new(),
            schemas: SchemaCache::default(),
            bytes: head.len() as u64,
        });
        self.abandon_active = false;
        self.uncommitted_schemas.clear();
        Ok(())
    }

    /// Ends the active segment with a second copy of its schema and resource records
    /// (far from the first, so damage to the segment's start costs no schema), then
    /// syncs it. On error the copies are cut off again and the segment stays active.
    fn seal(&mut self) -> std::io::Result<()> {
        let Some(old) = self.active.as_mut() else {
            return Ok(());
        };
        let mut trailer = Vec::new();
        for (reference, payload) in &old.schema_payloads {
            encode_record(&mut trailer, old.seed, RecordType::Schema, *reference, payload);
        }
        encode_record(
            &mut trailer,
            old.seed,
            RecordType::Resource,
            self.resource_ref,
            &self.resource_payload,
        );
        if let Err(e) = old.file.write_all(&trailer).and_then(|()| old.file.sync_data()) {
            let _ = old.file.set_len(old.bytes);
            let _ = old.file.seek(SeekFrom::Start(old.bytes));
            return Err(e);
        }
        old.bytes += trailer.len() as u64;
        old.schema_payloads.clear();
        Ok(())
    }

    /// Buffers events of one kind; returns the seq of the first. Nothing is
    /// written until [`commit`](Spool::commit).
    pub(crate) fn append(&mut self, events: &[Event]) -> u64 {
        let first = self.next_seq;
        if self.refusing {
            return first;
        }
        for e in events {
            // Keep segments near `segment_bytes` (a damaged schema record costs at most
            // one segment): write what is buffered and roll before the segment outgrows it.
            let over = self
                .active
                .as_ref()
                .is_some_and(|a| a.bytes + self.buf.len() as u64 >= self.cfg.segment_bytes as u64);
            if over && self.roll_due() {
                if let Err(err) = self.commit_buffered() {
                    // Everything not committed is refused; the commit reports why.
                    self.deferred_error.get_or_insert(err);
                    return first;
                }
            }
            let Some(active) = self.active.as_mut() else {
                return first;
            };
            let schema_ref = match active.schemas.get(e.schema()) {
                Some(r) => r,
                None => {
                    let mut payload = Vec::new();
                    codec::encode_schema(&mut payload, e.schema());
                    let reference = fingerprint(&payload);
                    if !active.schema_payloads.iter().any(|(r, _)| *r == reference) {
                        encode_record(&mut self.buf, active.seed, RecordType::Schema, reference, &payload);
                        active.schema_payloads.push((reference, payload));
                        self.uncommitted_schemas.push(reference);
                        self.shared.add_schema(reference, e.schema());
                    }
                    active.schemas.note(e, reference);
                    reference
                }
            };
            if self.next_seq.is_multiple_of(INDEX_EVERY) {
                self.pending_index
                    .push((self.next_seq, active.bytes + self.buf.len() as u64));
            }
            let default_resource = self.resource_ref;
            encode_record_with(&mut self.buf, active.seed, RecordType::Event, self.next_seq, |out| {
                codec::encode_event(out, schema_ref, default_resource, e)
            });
            self.next_seq += 1;
        }
        first
    }

    /// Writes buffered records, fsyncs as the mode says, makes them readable. All or
    /// nothing: on error none of the events appended since the last commit is kept
    /// (the router refuses them), the spool stays writable, and the next commit tries
    /// again. An error of a write made while appending is returned here too.
    pub(crate) fn commit(&mut self) -> std::io::Result<()> {
        let result = if self.refusing { Ok(()) } else { self.commit_buffered() };
        self.refusing = false;
        match self.deferred_error.take() {
            Some(e) => Err(e),
            None => result,
        }
    }

    fn commit_buffered(&mut self) -> std::io::Result<()> {
        if self.abandon_active {
            if let Err(e) = self.roll() {
                return Err(self.refuse_uncommitted(e));
            }
        }
        let Some(active) = self.active.as_mut() else {
            return Ok(());
        };
        let written = self.buf.len() as u64;
        if written > 0 {
            if let Err(e) = active.file.write_all(&self.buf) {
                return Err(self.refuse_uncommitted(e));
            }
        }
        let unsynced = self.unsynced || written > 0;
        let sync = unsynced
            && match self.cfg.fsync {
                FsyncMode::Batch => true,
                FsyncMode::Interval(d) => self.last_sync.elapsed() >= d,
                FsyncMode::Never => false,
            };
        let mut synced = false;
        if sync {
            if let Err(e) = active.file.sync_data() {
                if self.cfg.fsync == FsyncMode::Batch {
                    // Not known to be on disk: not committed.
                    return Err(self.refuse_uncommitted(e));
                }
                // Interval mode never promised these durable yet: they stay, and the
                // next interval tries again.
                self.shared.counters.write_errors.fetch_add(1, Relaxed);
                tracing::error!(spool = %self.cfg.path.display(), "spool fsync failed, will retry: {e}");
            } else {
                self.shared.counters.fsyncs.fetch_add(1, Relaxed);
                self.last_sync = Instant::now();
                synced = true;
            }
        }
        let Some(active) = self.active.as_mut() else {
            return Ok(());
        };
        active.bytes += written;
        self.shared.counters.appended_bytes.fetch_add(written, Relaxed);
        self.buf.clear();
        self.uncommitted_schemas.clear();
        self.unsynced = unsynced && !synced;
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
        if active.bytes >= self.cfg.segment_bytes as u64 && self.roll_due() {
            // The records are durable in this segment already: a failed roll is not a
            // failed commit. The segment stays active and grows until the next attempt.
            match self.roll() {
                Ok(()) => self.roll_retry_at = None,
                Err(e) => {
                    self.roll_retry_at = Some(Instant::now() + ROLL_RETRY);
                    tracing::warn!(spool = %self.cfg.path.display(), "cannot start a new spool segment, will retry in {ROLL_RETRY:?}: {e}");
                }
            }
        }
        Ok(())
    }

    fn roll_due(&self) -> bool {
        self.roll_retry_at.is_none_or(|t| Instant::now() >= t)
    }

    /// Gives up everything appended since the last commit, after a failed write: the
    /// file is cut back to its committed length, the buffered records and their seqs
    /// are dropped (the router refuses those events), and appends wait for the commit.
    fn refuse_uncommitted(&mut self, e: std::io::Error) -> std::io::Error {
        if let Some(active) = self.active.as_mut() {
            let cut = active
                .file
                .set_len(active.bytes)
                .and_then(|()| active.file.seek(SeekFrom::Start(active.bytes)).map(drop));
            if let Err(cut_error) = cut {
                tracing::error!(spool = %self.cfg.path.display(), "cannot cut a failed write off the spool segment, a new one will be started: {cut_error}");
                self.abandon_active = true;
            }
            for reference in self.uncommitted_schemas.drain(..) {
                active.schema_payloads.retain(|(r, _)| *r != reference);
            }
            active.schemas.clear();
        }
        self.buf.clear();
        self.pending_index.clear();
        self.next_seq = self.shared.written_seq.load(Relaxed);
        self.refusing = true;
        e
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
