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

impl Shared {
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
        let catalog = self.catalog();
        // Sized once: growing a batch of 10,000 events by doubling reallocates
        // megabytes (and faults their pages in) several times per read.
        let mut out = Vec::with_capacity(max_events.min(to.saturating_sub(from).min(1 << 16) as usize));
        let mut bytes = 0usize;
        let mut pos = from;
        let mut inline = codec::InlineResources::default();
        for seg in metas {
            pos = pos.max(seg.base_seq);
            let start = seg
                .index
                .iter()
                .rev()
                .find(|(s, _)| *s <= pos)
                .map_or(HEADER_LEN as u64, |(_, o)| *o);
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
            let mut buf: Arc<Vec<u8>> = Arc::new(Vec::new());
            let mut at = 0usize;
            loop {
                let want = remaining.min(WINDOW) as usize;
                if at > 0 || want > 0 {
                    let tail = buf.get(at..).unwrap_or_default();
                    let mut next = Vec::with_capacity(tail.len() + want);
                    next.extend_from_slice(tail);
                    next.resize(tail.len() + want, 0);
                    file.read_exact(&mut next[tail.len()..])?;
                    remaining -= want as u64;
                    buf = Arc::new(next);
                    at = 0;
                }
                let mut progressed = false;
                while at < buf.len() {
                    match parse_record(&buf, at, seed) {
                        Parsed::Record(r) => {
                            progressed = true;
                            at = r.end();
                            if r.ty != RecordType::Event || r.seq < pos {
                                continue;
                            }
                            if r.seq >= to {
                                self.counters.replayed_events.fetch_add(out.len() as u64, Relaxed);
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
