//! The reader side: exporter workers read spooled events back by seq.

use super::segment::{parse_record, record_seed, Parsed, RecordType, HEADER_LEN};
use super::{codec, SegmentMeta, Shared};
use crate::event::Event;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Bytes read from a segment at a time.
const WINDOW: u64 = 1 << 20;

/// Where a read stopped inside a segment: the bytes it read and did not parse yet.
/// The next read from there goes on with them instead of seeking to the index
/// entry before its position (up to `INDEX_EVERY` records parsed again) and
/// reading a whole window again, of which one batch uses a part.
pub(crate) struct ReadResume {
    /// The seq the next read must start from for this to apply.
    seq: u64,
    /// The segment's first seq.
    base_seq: u64,
    window: Arc<Vec<u8>>,
    /// The first unparsed byte of `window`.
    at: usize,
    /// The file offset just past `window`.
    file_offset: u64,
}

impl Shared {
    /// Reads events with `from <= seq < to` whose kind `wants` accepts, up to
    /// `max_events`/`max_bytes`. Returns the events and the seq to continue from.
    #[cfg(test)]
    pub(crate) fn read(
        &self,
        from: u64,
        to: u64,
        max_events: usize,
        max_bytes: usize,
        wants: &dyn Fn(&str) -> bool,
    ) -> std::io::Result<(Vec<Event>, u64)> {
        self.read_resuming(from, to, max_events, max_bytes, wants, &mut None)
    }

    /// [`Shared::read`], going on where the previous read left `resume` if it
    /// stopped at `from`, and leaving it where this one stops.
    pub(crate) fn read_resuming(
        &self,
        from: u64,
        to: u64,
        max_events: usize,
        max_bytes: usize,
        wants: &dyn Fn(&str) -> bool,
        resume: &mut Option<ReadResume>,
    ) -> std::io::Result<(Vec<Event>, u64)> {
        let mut resumed = resume.take().filter(|r| r.seq == from);
        let metas: Vec<SegmentMeta> = self
            .lock_segments()
            .iter()
            .filter(|s| s.next_seq > from && s.base_seq < to)
            .cloned()
            .collect();
        let catalog = self.catalog();
        // Sized once: growing a batch of 10,000 events by doubling reallocates
        // megabytes (and faults their pages in) several times per read.
        let mut out = Vec::with_capacity(max_events.min(to.saturating_sub(from).min(1 << 16) as usize));
        let mut bytes = 0usize;
        let mut pos = from;
        let mut inline = codec::InlineResources::default();
        for seg in metas {
            pos = pos.max(seg.base_seq);
            let resumed = resumed.take().filter(|r| r.base_seq == seg.base_seq);
            let start = match &resumed {
                Some(r) => r.file_offset,
                None => seg
                    .index
                    .iter()
                    .rev()
                    .find(|(s, _)| *s <= pos)
                    .map_or(HEADER_LEN as u64, |(_, o)| *o),
            };
            let seed = record_seed(seg.version, seg.base_seq);
            let mut file = match File::open(&seg.path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            file.seek(SeekFrom::Start(start))?;
            let mut remaining = seg.bytes.saturating_sub(start);
            // The events read keep their fields in the window they were read from
            // (see `fields`): each refill is a new window, starting with the
            // unparsed tail of the last.
            // A resumed window is parsed on before anything more is read.
            let mut parse_first = resumed.is_some();
            let (mut buf, mut at) = match resumed {
                Some(r) => (r.window, r.at),
                None => (Arc::new(Vec::new()), 0usize),
            };
            // Where the bytes after `buf` start in the file.
            let mut file_offset = start;
            loop {
                let want = remaining.min(WINDOW) as usize;
                if !std::mem::take(&mut parse_first) && (at > 0 || want > 0) {
                    let tail = buf.get(at..).unwrap_or_default();
                    let mut next = Vec::with_capacity(tail.len() + want);
                    next.extend_from_slice(tail);
                    // Read into the spare capacity: no zeroing of a window about to be overwritten.
                    let got = (&mut file).take(want as u64).read_to_end(&mut next)?;
                    if got < want {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("{} ends before its committed bytes", seg.path.display()),
                        ));
                    }
                    remaining -= want as u64;
                    file_offset += want as u64;
                    buf = Arc::new(next);
                    at = 0;
                }
                let mut progressed = false;
                while at < buf.len() {
                    match parse_record(&buf, at, seed) {
                        Parsed::Record(r) => {
                            progressed = true;
                            let record_at = at;
                            at = r.end();
                            if r.ty != RecordType::Event || r.seq < pos {
                                continue;
                            }
                            if r.seq >= to {
                                self.counters.replayed_events.fetch_add(out.len() as u64, Relaxed);
                                *resume = Some(ReadResume {
                                    seq: to,
                                    base_seq: seg.base_seq,
                                    window: buf,
                                    at: record_at,
                                    file_offset,
                                });
                                return Ok((out, to));
                            }
                            let payload = buf.get(r.payload.clone()).unwrap_or_default();
                            let refs = match seg.version {
                                1 => codec::Refs::Segment {
                                    schemas: &seg.schemas,
                                    resource: seg.resource.as_ref(),
                                },
                                _ => codec::Refs::Catalog(&catalog),
                            };
                            pos = r.seq + 1;
                            // Events whose schema or resource is lost were counted at recovery.
                            let Some(schema) = refs.resolve(payload).filter(|s| wants(&s.kind)) else {
                                continue;
                            };
                            match codec::decode_event_in(&buf, r.payload.clone(), schema, refs, &mut inline) {
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
                                *resume = Some(ReadResume {
                                    seq: pos,
                                    base_seq: seg.base_seq,
                                    window: buf,
                                    at,
                                    file_offset,
                                });
                                return Ok((out, pos));
                            }
                        }
                        Parsed::Incomplete if remaining > 0 => break,
                        Parsed::Incomplete | Parsed::Invalid => {
                            // Damage found while reading (it was intact at recovery): skip to
                            // the next intact record and count it.
                            let skip_to = (at + 1..buf.len())
                                .find(|p| matches!(parse_record(&buf, *p, seed), Parsed::Record(_)))
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
