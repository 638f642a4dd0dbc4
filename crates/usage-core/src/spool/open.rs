//! Opening a spool for writing: the lock, recovery of every segment, the first
//! segment of this process.

use super::catalog::fingerprint;
use super::recover::{gaps_between, segment_files, Recovery};
use super::writer::Spool;
use super::{codec, cursor, lock, RecoveryReport, Shared, SpoolConfig, SpoolCounters, SpoolError};
use crate::event::resource::Resource;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Instant;

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
        remove_stale_temp_files(&cfg.path);
        let names = segment_files(&cfg.path).map_err(|e| fail(format!("cannot list segments: {e}")))?;
        let mut recovery = Recovery::new(&cfg.path, false);
        let mut metas = Vec::new();
        let mut next_seq = 0u64;
        for path in names {
            recovery.report.segments += 1;
            match recovery.segment(&path) {
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
        let (mut report, mut catalog) = recovery.finish();
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
        let mut resource_payload = Vec::new();
        codec::encode_resource(&mut resource_payload, &resource);
        let resource_ref = fingerprint(&resource_payload);
        catalog.insert_resource(resource_ref, resource);
        let shared = Arc::new(Shared {
            dir: cfg.path.clone(),
            segments: RwLock::new(Vec::new()),
            written_seq: AtomicU64::new(0),
            counters: SpoolCounters::default(),
            max_bytes: cfg.max_bytes as u64,
            catalog: RwLock::new(Arc::new(catalog)),
        });
        let c = &shared.counters;
        c.lost_damaged.store(report.damaged_events, Relaxed);
        c.lost_missing.store(report.missing_events, Relaxed);
        c.lost_unreadable.store(report.unreadable_events, Relaxed);
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
            resource_payload,
            resource_ref,
            active: None,
            next_seq,
            buf: Vec::with_capacity(1 << 20),
            pending_index: Vec::new(),
            last_sync: Instant::now(),
            unsynced: false,
            deferred_error: None,
            refusing: false,
            uncommitted_schemas: Vec::new(),
            abandon_active: false,
            roll_retry_at: None,
        };
        spool
            .roll()
            .map_err(|e| fail(format!("cannot create a segment: {e}")))?;
        Ok((spool, report))
    }
}

/// Removes what a kill during an atomic write left behind (`.<name>.tmp`, see
/// [`crate::fs::write_atomic`]): with the lock held, no other writer can own one.
fn remove_stale_temp_files(dir: &Path) {
    for sub in ["segments", "cursors", "quarantine"] {
        for entry in std::fs::read_dir(dir.join(sub)).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(".tmp") {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => {
                        tracing::info!(file = %entry.path().display(), "removed a temp file an interrupted write left")
                    }
                    Err(e) => tracing::warn!(file = %entry.path().display(), "cannot remove a stale temp file: {e}"),
                }
            }
        }
    }
}
