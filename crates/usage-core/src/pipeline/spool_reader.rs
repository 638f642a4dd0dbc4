//! An exporter's reads from the spool, kept across cancellation.
//!
//! With batches in flight, the worker waits for the next batch and for a batch to
//! finish at once; when one finishes first, the wait for the next batch is dropped.
//! A spool read it had started runs on in the blocking pool; the next wait picks it
//! up rather than decoding the same events again.

use super::queue::ExporterSlot;
use crate::event::Event;
use crate::spool::{ReadResume, Shared};
use std::io;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

type Read = io::Result<(Vec<Event>, u64)>;

/// A read's outcome and where it stopped, for the next read to go on from.
type Resumable = (Read, Option<ReadResume>);

/// A read of `from..to` still running (or finished and not yet taken).
struct Pending {
    from: u64,
    to: u64,
    task: JoinHandle<Resumable>,
}

pub(crate) struct SpoolReader {
    spool: Arc<Shared>,
    slot: Arc<ExporterSlot>,
    max_events: usize,
    max_bytes: usize,
    pending: Mutex<Option<Pending>>,
    /// Where the last finished read stopped (reads are sequential while lagging).
    resume: Mutex<Option<ReadResume>>,
}

/// Puts an unfinished read back when the wait for it is dropped.
struct KeepIfDropped<'a> {
    reader: &'a SpoolReader,
    read: Option<Pending>,
}

impl Drop for KeepIfDropped<'_> {
    fn drop(&mut self) {
        if let Some(read) = self.read.take() {
            *lock(&self.reader.pending) = Some(read);
        }
    }
}

impl SpoolReader {
    pub(crate) fn new(spool: Arc<Shared>, slot: Arc<ExporterSlot>, max_events: usize, max_bytes: usize) -> Self {
        SpoolReader {
            spool,
            slot,
            max_events,
            max_bytes,
            pending: Mutex::new(None),
            resume: Mutex::new(None),
        }
    }

    /// This exporter's kinds from `from..to`, up to one batch, and the position
    /// after them. A read of `from` up to an earlier `to` that a dropped wait left
    /// running is taken instead of starting another (it holds fewer events at most).
    pub(crate) async fn read(&self, from: u64, to: u64) -> Read {
        let resumed = lock(&self.pending).take().filter(|p| p.from == from && p.to <= to);
        let read = resumed.unwrap_or_else(|| {
            let (spool, slot) = (self.spool.clone(), self.slot.clone());
            let (max_events, max_bytes) = (self.max_events, self.max_bytes);
            let mut resume = lock(&self.resume).take();
            Pending {
                from,
                to,
                task: tokio::task::spawn_blocking(move || {
                    let read = spool.read_resuming(from, to, max_events, max_bytes, &|k| slot.wants(k), &mut resume);
                    (read, resume)
                }),
            }
        });
        let mut keep = KeepIfDropped {
            reader: self,
            read: Some(read),
        };
        let outcome = match keep.read.as_mut() {
            Some(read) => (&mut read.task).await,
            None => return Ok((Vec::new(), from)),
        };
        keep.read = None;
        let (read, resume) = outcome.map_err(io::Error::other)?;
        *lock(&self.resume) = resume;
        read
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
