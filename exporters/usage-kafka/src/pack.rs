//! Packing a kind's events into NDJSON messages (`events_per_message > 1`): one open
//! message per key, or with `pack_by = "partition"` one per partition the keys hash
//! to, so hundreds of keys still fill messages. Also where keyed messages go
//! (`partition_of`, the topics' partition counts), packed or one per event.

use crate::config::{KafkaConfig, PackBy, Property};
use crate::exporter::{classify, KafkaExporter};
use crate::produce::Outgoing;
use crate::tracker::AttemptId;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::Producer;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use usage_core::{json, Batch, ExportError};

/// How long a topic's partition count is trusted before it is asked again: a topic
/// that gains partitions is seen within this long (its keys then move, as they do
/// for Kafka's own partitioner).
const PARTITIONS_REFRESH: Duration = Duration::from_secs(60);

/// The partition librdkafka's default partitioner (`consistent_random`) gives a
/// message keyed `key`: CRC-32 of the key modulo the partition count. A packed
/// message lands where its events would have landed one by one.
pub(crate) fn partition_of(key: &[u8], partitions: i32) -> i32 {
    (crc32fast::hash(key) % partitions.max(1) as u32) as i32
}

/// Whether `partition_of` is where librdkafka would put a keyed message under
/// these settings: its default partitioner, or one named that hashes keys alike.
pub(crate) fn places_keys_like_us(cfg: &KafkaConfig) -> bool {
    match cfg.librdkafka.get("partitioner") {
        None => true,
        Some(Property::Text(p)) => p == "consistent_random" || p == "consistent",
        Some(_) => false,
    }
}

/// Partition counts per topic, from the brokers' metadata. A count of 0 records a
/// topic whose metadata could not be had, so it is not asked for again at once.
#[derive(Default)]
pub(crate) struct PartitionCounts(Mutex<HashMap<String, (i32, Instant)>>);

impl PartitionCounts {
    /// The count, or 0 after a failed ask, if asked within `PARTITIONS_REFRESH`.
    pub(crate) fn fresh(&self, topic: &str) -> Option<i32> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(topic)
            .filter(|(_, at)| at.elapsed() < PARTITIONS_REFRESH)
            .map(|(n, _)| *n)
    }

    /// Forgets every count: a partition picked from one no longer exists (a topic
    /// re-created with fewer), so the retry asks the brokers again.
    pub(crate) fn forget_all(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub(crate) fn remember(&self, topic: &str, n: i32) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(topic.to_string(), (n, Instant::now()));
    }
}

/// What one open message is for.
enum Target<K = String> {
    /// Keyed `Some(key)`, or unkeyed.
    Key(Option<K>),
    /// Sent to this partition (unkeyed); `None` for events without a key value,
    /// which librdkafka places.
    Partition(Option<i32>),
}

/// Events packed into one NDJSON message.
struct Pack {
    target: Target,
    payload: Vec<u8>,
    /// Batch indices of the events in this message.
    events: Vec<usize>,
    ts_ms: i64,
}

/// A kind's open messages, found by key value or by partition.
struct OpenPacks {
    packs: Vec<Pack>,
    by_key: HashMap<String, usize>,
    /// Index `partitions` is "no key value".
    by_partition: Vec<Option<usize>>,
    unkeyed: Option<usize>,
}

impl OpenPacks {
    fn new(partitions: i32) -> Self {
        OpenPacks {
            packs: Vec::new(),
            by_key: HashMap::new(),
            by_partition: vec![None; partitions.max(0) as usize + 1],
            unkeyed: None,
        }
    }

    /// The open message for `target`, opened if there is none (a key value is
    /// copied only then).
    fn find_or_open(&mut self, target: Target<std::borrow::Cow<'_, str>>) -> &mut Pack {
        let none = self.by_partition.len() - 1;
        let found = match &target {
            Target::Key(Some(k)) => self.by_key.get(k.as_ref()).copied(),
            Target::Key(None) => self.unkeyed,
            Target::Partition(p) => self.by_partition[p.map_or(none, |p| p as usize)],
        };
        let slot = found.unwrap_or_else(|| {
            let at = self.packs.len();
            let target = match target {
                Target::Key(Some(k)) => {
                    let k = k.into_owned();
                    self.by_key.insert(k.clone(), at);
                    Target::Key(Some(k))
                }
                Target::Key(None) => {
                    self.unkeyed = Some(at);
                    Target::Key(None)
                }
                Target::Partition(p) => {
                    self.by_partition[p.map_or(none, |p| p as usize)] = Some(at);
                    Target::Partition(p)
                }
            };
            self.packs.push(Pack {
                target,
                payload: Vec::new(),
                events: Vec::new(),
                ts_ms: 0,
            });
            at
        });
        &mut self.packs[slot]
    }
}

impl KafkaExporter {
    /// The partition count of each topic `batch` goes to (empty unless packing by
    /// partition). Fails before anything is sent when a topic has no metadata.
    pub(crate) async fn partitions_of(&self, batch: &Batch) -> Result<HashMap<String, i32>, ExportError> {
        let mut out = HashMap::new();
        if self.pack_by != PackBy::Partition {
            return Ok(out);
        }
        for slice in batch.slices() {
            let Some(first) = slice.first() else { continue };
            let topic = self.topic_for(first.kind());
            if let std::collections::hash_map::Entry::Vacant(slot) = out.entry(topic) {
                let n = self.partition_count(slot.key()).await?;
                slot.insert(n);
            }
        }
        Ok(out)
    }

    /// The partition count of `topic` if known or learnt now; `None` (librdkafka
    /// places the messages) when its metadata cannot be had, asked again only after
    /// `PARTITIONS_REFRESH`.
    pub(crate) async fn known_partition_count(&self, topic: &str) -> Option<i32> {
        if let Some(n) = self.partitions.fresh(topic) {
            return (n > 0).then_some(n);
        }
        let n = self.partition_count(topic).await.ok();
        if n.is_none() {
            self.partitions.remember(topic, 0);
        }
        n
    }

    async fn partition_count(&self, topic: &str) -> Result<i32, ExportError> {
        if let Some(n) = self.partitions.fresh(topic).filter(|n| *n > 0) {
            return Ok(n);
        }
        let producer = self.producer.clone();
        let name = topic.to_string();
        let asked = tokio::task::spawn_blocking(move || {
            let md = producer.client().fetch_metadata(Some(&name), Duration::from_secs(5))?;
            Ok::<_, KafkaError>(md.topics().first().map(|t| (t.error(), t.partitions().len())))
        })
        .await
        .map_err(|e| ExportError::retryable(e.to_string()))?;
        let found = asked
            .map_err(|e| ExportError::retryable(format!("kafka {}: metadata of topic {topic}: {e}", self.brokers)))?;
        match found {
            Some((None, n)) if n > 0 => {
                let n = i32::try_from(n).unwrap_or(i32::MAX);
                self.partitions.remember(topic, n);
                Ok(n)
            }
            Some((Some(code), _)) => {
                let code = RDKafkaErrorCode::from(code);
                let why = classify(&KafkaError::MetadataFetch(code), &self.brokers);
                Err(match why {
                    ExportError::Paused { .. } => ExportError::paused(format!(
                        "kafka {}: topic {topic}: {code} (pack_by = \"partition\" needs its partition count)",
                        self.brokers
                    )),
                    _ => ExportError::retryable(format!("kafka {}: topic {topic}: {code}", self.brokers)),
                })
            }
            _ => Err(ExportError::retryable(format!(
                "kafka {}: topic {topic} has no partitions in the brokers' metadata yet",
                self.brokers
            ))),
        }
    }

    /// The open message event `e` belongs in: by key value (none when keyed by id),
    /// or by the partition its key picks (`None`: no key value, librdkafka places it).
    fn target_of<'e>(&self, e: &'e usage_core::Event, partitions: i32) -> Target<std::borrow::Cow<'e, str>> {
        match self.pack_by {
            PackBy::Key if self.key == "id" => Target::Key(None),
            PackBy::Key => Target::Key(self.key_for(e, "")),
            PackBy::Partition if self.key == "id" => {
                let mut id_buf = [0u8; 36];
                let id = e.id().uuid().hyphenated().encode_lower(&mut id_buf);
                Target::Partition(Some(partition_of(id.as_bytes(), partitions)))
            }
            PackBy::Partition => Target::Partition(self.key_for(e, "").map(|k| partition_of(k.as_bytes(), partitions))),
        }
    }

    /// NDJSON messages of up to `events_per_message` events and `max_message_bytes`,
    /// one open message per key or partition, `event-count` header.
    pub(crate) async fn send_packed(
        &self,
        batch: &Batch,
        attempt: AttemptId,
        partitions: &HashMap<String, i32>,
        packs: &mut Vec<Vec<usize>>,
    ) -> usize {
        let mut sent = 0usize;
        let mut index = 0usize;
        let mut carry = Vec::new();
        // A run of one kind keeps its messages open across the slices (router
        // chunks) the batch holds it in: closing them at each slice's end sent
        // half-full messages, twice as many when a batch came from the queue.
        let mut current: Option<(&str, String, i32, OpenPacks)> = None;
        for slice in batch.slices() {
            let Some(first) = slice.first() else { continue };
            if current.as_ref().is_none_or(|(kind, ..)| *kind != first.kind()) {
                if let Some((kind, topic, _, mut open)) = current.take() {
                    sent += self.send_open(&topic, kind, &mut open, attempt, packs).await;
                }
                let topic = self.topic_for(first.kind());
                let count = partitions.get(&topic).copied().unwrap_or(1);
                current = Some((first.kind(), topic, count, OpenPacks::new(count)));
            }
            let Some((kind, topic, count, open)) = current.as_mut() else {
                continue;
            };
            let (kind, count) = (*kind, *count);
            for e in slice {
                let i = index;
                index += 1;
                let p = open.find_or_open(self.target_of(e, count));
                // Written straight into the message; moved to the next one only when
                // it would cross the byte bound.
                let before = p.payload.len();
                json::write_event(&mut p.payload, e, batch.resource());
                p.payload.push(b'\n');
                if !p.events.is_empty() && p.payload.len() > self.max_message_bytes {
                    carry.clear();
                    carry.extend_from_slice(&p.payload[before..]);
                    p.payload.truncate(before);
                    sent += self.send_pack(topic, kind, p, attempt, packs).await;
                    p.payload.extend_from_slice(&carry);
                }
                if p.events.is_empty() {
                    p.ts_ms = e.ts().as_millis();
                }
                p.events.push(i);
                if p.events.len() >= self.events_per_message {
                    sent += self.send_pack(topic, kind, p, attempt, packs).await;
                }
            }
        }
        if let Some((kind, topic, _, mut open)) = current.take() {
            sent += self.send_open(&topic, kind, &mut open, attempt, packs).await;
        }
        sent
    }

    /// Sends every message still open; the count of reports that will follow.
    async fn send_open(
        &self,
        topic: &str,
        kind: &str,
        open: &mut OpenPacks,
        attempt: AttemptId,
        packs: &mut Vec<Vec<usize>>,
    ) -> usize {
        let mut sent = 0;
        for p in &mut open.packs {
            if !p.events.is_empty() {
                sent += self.send_pack(topic, kind, p, attempt, packs).await;
            }
        }
        sent
    }

    /// Produces one packed message and empties the pack; 1 when a report will follow.
    async fn send_pack(
        &self,
        topic: &str,
        kind: &str,
        p: &mut Pack,
        attempt: AttemptId,
        packs: &mut Vec<Vec<usize>>,
    ) -> usize {
        let m = packs.len();
        packs.push(std::mem::take(&mut p.events));
        let count = packs[m].len().to_string();
        let (key, partition) = match &p.target {
            Target::Key(k) => (k.as_deref().map(str::as_bytes), None),
            Target::Partition(partition) => (None, *partition),
        };
        let message = Outgoing {
            payload: &p.payload,
            key,
            partition,
            timestamp_ms: p.ts_ms,
            headers: self.headers.packed(kind, &count),
            opaque: attempt.opaque(m),
        };
        let handle = self.topic_handle(topic);
        let sent = usize::from(self.produce(&handle, message, attempt, m).await);
        p.payload.clear();
        sent
    }
}

#[cfg(test)]
#[test]
fn partitions_follow_crc32_like_librdkafka() {
    // CRC-32 ("123456789") = 0xCBF43926, the standard check value.
    assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
    assert_eq!(partition_of(b"123456789", 7), (0xCBF4_3926u32 % 7) as i32);
    assert_eq!(partition_of(b"anything", 1), 0);
}

#[cfg(test)]
#[test]
fn keys_are_placed_here_only_under_a_partitioner_hashing_like_ours() {
    let with = |partitioner: Option<&str>| {
        let mut cfg = usage_core::ExporterSection::new("k", "kafka")
            .set("brokers", "b:9092")
            .parse::<KafkaConfig>()
            .expect("settings");
        if let Some(p) = partitioner {
            cfg.librdkafka.insert("partitioner".into(), Property::Text(p.into()));
        }
        places_keys_like_us(&cfg)
    };
    assert!(with(None));
    assert!(with(Some("consistent_random")) && with(Some("consistent")));
    assert!(!with(Some("murmur2_random")) && !with(Some("fnv1a")) && !with(Some("random")));
}

#[cfg(test)]
#[test]
fn forgotten_counts_are_asked_again() {
    let counts = PartitionCounts::default();
    counts.remember("a", 6);
    counts.remember("b", 0);
    assert_eq!((counts.fresh("a"), counts.fresh("b")), (Some(6), Some(0)));
    counts.forget_all();
    assert_eq!((counts.fresh("a"), counts.fresh("b")), (None, None));
}
