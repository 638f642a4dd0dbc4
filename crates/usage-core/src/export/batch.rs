//! Batches handed to exporters: zero-copy views over chunks of events that the
//! router shares between every exporter subscribed to their kind.

use crate::event::resource::Resource;
use crate::event::Event;
use crate::export::hand_off::HandOff;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Events of one kind, moved out of the ingest queue together. Shared (`Arc`) by
/// every exporter that subscribes to the kind, so fan-out copies nothing.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub(crate) events: Vec<Event>,
    /// Sequence number of `events[0]`; the chunk covers a contiguous range.
    pub(crate) first_seq: u64,
    /// `prefix[i]` = bytes of `events[..i]`, so any slice's size is O(1).
    prefix: Vec<usize>,
    pub(crate) created: Instant,
    pool: Option<Arc<BufferPool>>,
}

impl Chunk {
    pub(crate) fn new(events: Vec<Event>) -> Self {
        Self::pooled(events, Vec::new(), None)
    }

    /// A chunk whose buffers go back to `pool` when the last exporter is done with it.
    pub(crate) fn pooled(events: Vec<Event>, mut prefix: Vec<usize>, pool: Option<Arc<BufferPool>>) -> Self {
        prefix.clear();
        prefix.reserve(events.len() + 1);
        let mut total = 0;
        prefix.push(total);
        for e in &events {
            total += e.approx_bytes();
            prefix.push(total);
        }
        Chunk {
            events,
            first_seq: 0,
            prefix,
            created: Instant::now(),
            pool,
        }
    }

    /// Sets the sequence number of the first event.
    pub(crate) fn at_seq(mut self, first_seq: u64) -> Self {
        self.first_seq = first_seq;
        self
    }

    fn bytes_of(&self, start: usize, end: usize) -> usize {
        self.prefix[end] - self.prefix[start]
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.put(std::mem::take(&mut self.events), std::mem::take(&mut self.prefix));
        }
    }
}

/// Recycles chunk buffers: steady-state routing allocates nothing, and the
/// allocator never has to map and unmap large blocks (whose TLB shootdowns would
/// interrupt emitting threads).
#[derive(Debug)]
pub(crate) struct BufferPool {
    free: crossbeam_queue::ArrayQueue<(Vec<Event>, Vec<usize>)>,
    capacity: usize,
}

impl BufferPool {
    pub(crate) fn new(buffers: usize, capacity: usize) -> Self {
        BufferPool {
            free: crossbeam_queue::ArrayQueue::new(buffers.max(1)),
            capacity,
        }
    }

    /// An empty events buffer and prefix buffer with room for `capacity` events.
    pub(crate) fn take(&self) -> (Vec<Event>, Vec<usize>) {
        self.free
            .pop()
            .unwrap_or_else(|| (Vec::with_capacity(self.capacity), Vec::with_capacity(self.capacity + 1)))
    }

    fn put(&self, mut events: Vec<Event>, mut prefix: Vec<usize>) {
        events.clear();
        prefix.clear();
        if events.capacity() >= self.capacity && events.capacity() <= self.capacity * 2 {
            let _ = self.free.push((events, prefix));
        }
    }
}

/// A contiguous run of one chunk.
#[derive(Debug, Clone)]
pub(crate) struct Slice {
    pub(crate) chunk: Arc<Chunk>,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

impl Slice {
    pub(crate) fn whole(chunk: Arc<Chunk>) -> Self {
        let end = chunk.events.len();
        Slice { chunk, start: 0, end }
    }

    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    /// The sequence number of this slice's first event.
    pub(crate) fn start_seq(&self) -> u64 {
        self.chunk.first_seq + self.start as u64
    }

    /// One past the sequence number of this slice's last event.
    pub(crate) fn end_seq(&self) -> u64 {
        self.chunk.first_seq + self.end as u64
    }

    pub(crate) fn events(&self) -> &[Event] {
        &self.chunk.events[self.start..self.end]
    }

    pub(crate) fn bytes(&self) -> usize {
        self.chunk.bytes_of(self.start, self.end)
    }

    /// Bytes of the first `n` events of this slice.
    pub(crate) fn bytes_of_first(&self, n: usize) -> usize {
        self.chunk.bytes_of(self.start, (self.start + n).min(self.end))
    }

    /// How many leading events fit in `budget` bytes (at most `max`).
    pub(crate) fn fit(&self, max: usize, budget: usize) -> usize {
        let limit = (self.start + max).min(self.end);
        let base = self.chunk.prefix[self.start];
        // prefix is non-decreasing: binary search for the last index within budget.
        let within = self.chunk.prefix[self.start..=limit].partition_point(|&p| p - base <= budget);
        within.saturating_sub(1)
    }

    /// Splits off the first `n` events.
    pub(crate) fn take_front(&mut self, n: usize) -> Slice {
        let cut = (self.start + n).min(self.end);
        let front = Slice {
            chunk: self.chunk.clone(),
            start: self.start,
            end: cut,
        };
        self.start = cut;
        front
    }
}

/// The idempotency key of a batch: derived from its events, so the same events
/// retried give the same id (HTTP `Idempotency-Key`, S3 object names, ClickHouse
/// insert dedup token).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId(u128);

impl BatchId {
    /// XXH3-128 over every event id in order, then the count: batches that differ
    /// in any event differ in id (review M5: first, last and count were not enough
    /// for interleaved tenants or ids placed at batch boundaries).
    fn of<'a>(events: impl Iterator<Item = &'a Event>) -> Self {
        let mut h = twox_hash::XxHash3_128::new();
        let mut n = 0u64;
        for e in events {
            h.write(e.id().as_bytes());
            n += 1;
        }
        h.write(&n.to_le_bytes());
        BatchId(h.finish_128())
    }

    /// The id as a number.
    pub fn as_u128(&self) -> u128 {
        self.0
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BatchId({self})")
    }
}

/// A batch of events for one exporter, in emit order, possibly of several kinds.
///
/// ```
/// use std::sync::Arc;
/// use usage_core::{Batch, Event, RelayUsage, Resource, Value};
/// let batch = Batch::from_events(
///     (0..3).map(|cu| Event::new(RelayUsage { cu, ..Default::default() })).collect(),
///     Arc::new(Resource::default()),
/// );
/// assert_eq!(batch.len(), 3);
/// assert_eq!(batch.slices().count(), 1); // one kind
/// // By field name: works for events read back from the spool too (`downcast_ref`
/// // does not).
/// let total: u64 = batch
///     .iter()
///     .filter_map(|e| match e.field("cu") {
///         Some(Value::U64(cu)) => Some(cu),
///         _ => None,
///     })
///     .sum();
/// assert_eq!(total, 3);
/// ```
#[derive(Clone)]
pub struct Batch {
    /// Hashed on first use: the Kafka and OTLP exporters never ask, and hashing
    /// means reading every event's id, cold in the exporter's core.
    id: OnceLock<BatchId>,
    slices: Vec<Slice>,
    len: usize,
    resource: Arc<Resource>,
    attempt: u32,
    /// Once this batch is finished, every event below this seq is finished.
    end_seq: u64,
    /// Set by [`Batch::handed_off`]: the pipeline may start the next batch.
    hand_off: Option<Arc<HandOff>>,
}

impl Batch {
    pub(crate) fn from_slices(slices: Vec<Slice>, resource: Arc<Resource>) -> Option<Self> {
        let slices: Vec<Slice> = slices.into_iter().filter(|s| s.len() > 0).collect();
        slices.first()?;
        let len = slices.iter().map(Slice::len).sum();
        let end_seq = slices.last().map_or(0, Slice::end_seq);
        Some(Batch {
            id: OnceLock::new(),
            slices,
            len,
            resource,
            attempt: 0,
            end_seq,
            hand_off: None,
        })
    }

    /// A batch from owned events (spooled reads, tools, exporters' own tests).
    /// Events are grouped into runs of the same kind, keeping their order.
    pub fn from_events(events: Vec<Event>, resource: Arc<Resource>) -> Self {
        // One chunk, sliced where the kind changes: no event is moved (spooled
        // batches of 10,000 events come through here).
        let chunk = Arc::new(Chunk::new(events));
        let mut slices = Vec::new();
        let mut start = 0;
        for run in chunk.events.chunk_by(|a, b| a.kind() == b.kind()) {
            let end = start + run.len();
            slices.push(Slice {
                chunk: chunk.clone(),
                start,
                end,
            });
            start = end;
        }
        Batch::from_slices(slices, resource.clone()).unwrap_or(Batch {
            id: OnceLock::from(BatchId(0)),
            slices: Vec::new(),
            len: 0,
            resource,
            attempt: 0,
            end_seq: 0,
            hand_off: None,
        })
    }

    /// The idempotency key: the same for every attempt of this batch.
    pub fn id(&self) -> BatchId {
        *self.id.get_or_init(|| BatchId::of(self.iter()))
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no events.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Approximate bytes the events hold in memory.
    pub fn bytes(&self) -> usize {
        self.slices.iter().map(Slice::bytes).sum()
    }

    /// The pipeline's resource attributes (an event's own, if set, overrides them).
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// 0 for the first attempt, then 1, 2, ... for retries of this same batch.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    pub(crate) fn end_seq(&self) -> u64 {
        self.end_seq
    }

    pub(crate) fn with_end_seq(mut self, end_seq: u64) -> Self {
        self.end_seq = end_seq;
        self
    }

    /// Says the next batch may start while this one awaits its acknowledgements:
    /// every event is in the destination client's ordered queue (e.g. produced to
    /// librdkafka), or, for a destination without order, the batch is encoded. An
    /// exporter type whose `batches_in_flight` allows it is then given the next
    /// batch. Exporters that never call it export one batch at a time.
    pub fn handed_off(&self) {
        if let Some(h) = &self.hand_off {
            h.set();
        }
    }

    pub(crate) fn with_hand_off(mut self, hand_off: Arc<HandOff>) -> Self {
        self.hand_off = Some(hand_off);
        self
    }

    pub(crate) fn set_attempt(&mut self, attempt: u32) {
        self.attempt = attempt;
    }

    /// All events, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Event> + '_ {
        self.slices.iter().flat_map(|s| s.events().iter())
    }

    /// Runs of events of a single kind, in order (handy for per-kind tables and topics).
    pub fn slices(&self) -> impl Iterator<Item = &[Event]> + '_ {
        self.slices.iter().map(Slice::events)
    }

    /// Splits into two halves by count (for destinations that said "too large").
    pub(crate) fn split(&self) -> Option<(Batch, Batch)> {
        if self.len < 2 {
            return None;
        }
        let mut left_n = self.len / 2;
        let mut left = Vec::new();
        let mut right = Vec::new();
        for s in &self.slices {
            if left_n == 0 {
                right.push(s.clone());
            } else if s.len() <= left_n {
                left_n -= s.len();
                left.push(s.clone());
            } else {
                let mut rest = s.clone();
                left.push(rest.take_front(left_n));
                left_n = 0;
                right.push(rest);
            }
        }
        Some((
            Batch::from_slices(left, self.resource.clone())?,
            Batch::from_slices(right, self.resource.clone())?,
        ))
    }

    /// The events at the given positions (in [`iter`](Batch::iter) order).
    pub(crate) fn select(&self, indices: &[usize]) -> Vec<&Event> {
        let mut wanted: Vec<usize> = indices.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let mut out = Vec::with_capacity(wanted.len());
        let mut w = wanted.iter().peekable();
        for (i, e) in self.iter().enumerate() {
            if w.peek() == Some(&&i) {
                out.push(e);
                w.next();
            }
        }
        out
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("id", &self.id())
            .field("len", &self.len)
            .field("attempt", &self.attempt)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NetworkEvent, RelayUsage};
    use proptest::prelude::*;

    #[test]
    fn from_events_slices_runs_of_one_kind_in_order() {
        let events = mixed(10);
        let batch = Batch::from_events(events.clone(), Arc::new(Resource::new("svc")));
        let runs: Vec<(String, usize)> = batch.slices().map(|s| (s[0].kind().to_string(), s.len())).collect();
        // i % 3 == 0 is a network_event: 1, 2, 1, 2, 1, 2, 1.
        let expected: Vec<(String, usize)> = [1, 2, 1, 2, 1, 2, 1]
            .iter()
            .enumerate()
            .map(|(r, &n)| {
                (
                    (if r % 2 == 0 { "network_event" } else { "relay_usage" }).to_string(),
                    n,
                )
            })
            .collect();
        assert_eq!(runs, expected);
        assert!(batch.slices().all(|s| s.iter().all(|e| e.kind() == s[0].kind())));
        let back: Vec<_> = batch.iter().map(|e| e.id()).collect();
        assert_eq!(back, events.iter().map(|e| e.id()).collect::<Vec<_>>(), "order kept");
    }

    fn mixed(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| {
                if i % 3 == 0 {
                    Event::new(NetworkEvent::default())
                } else {
                    Event::new(RelayUsage {
                        cu: i as u64,
                        ..Default::default()
                    })
                }
            })
            .collect()
    }

    #[test]
    fn batch_id_is_stable_and_content_derived() {
        let events = mixed(10);
        let a = Batch::from_events(events.clone(), Arc::default());
        let b = Batch::from_events(events.clone(), Arc::default());
        assert_eq!(a.id(), b.id());
        let c = Batch::from_events(events[..9].to_vec(), Arc::default());
        assert_ne!(a.id(), c.id());
        assert_eq!(a.id().to_string().len(), 32);
    }

    #[test]
    fn batches_differing_only_in_the_middle_differ_in_id() {
        // Review M5: same first id, last id and length, other events between.
        let events = mixed(5);
        let mut other = events.clone();
        other[2] = Event::new(RelayUsage {
            cu: 99,
            ..Default::default()
        });
        let (a, b) = (
            Batch::from_events(events.clone(), Arc::default()),
            Batch::from_events(other, Arc::default()),
        );
        assert_ne!(a.id(), b.id());
        // The same events in another order are another batch, too.
        let mut swapped = events.clone();
        swapped.swap(1, 2);
        assert_ne!(a.id(), Batch::from_events(swapped, Arc::default()).id());
    }

    #[test]
    fn select_picks_positions_in_order() {
        let events = mixed(7);
        let b = Batch::from_events(events.clone(), Arc::default());
        let picked: Vec<_> = b.select(&[5, 1, 5]).into_iter().map(Event::id).collect();
        assert_eq!(picked, vec![events[1].id(), events[5].id()]);
    }

    proptest! {
        #[test]
        fn split_keeps_every_event_once_in_order(n in 2usize..200) {
            let events = mixed(n);
            let b = Batch::from_events(events.clone(), Arc::default());
            let (l, r) = b.split().unwrap();
            prop_assert_eq!(l.len() + r.len(), n);
            prop_assert_eq!(l.len(), n / 2);
            let ids: Vec<_> = l.iter().chain(r.iter()).map(Event::id).collect();
            let want: Vec<_> = events.iter().map(Event::id).collect();
            prop_assert_eq!(ids, want);
            prop_assert!(l.slices().all(|s| s.iter().all(|e| e.kind() == s[0].kind())));
        }
    }
}
