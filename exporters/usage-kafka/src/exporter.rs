//! The Kafka exporter: one JSON message per event (or, with `events_per_message`,
//! NDJSON messages of up to that many events), acknowledged per batch.
//!
//! Delivery reports arrive on the producer's polling thread and settle a per-batch
//! tracker (no future or channel per message): the batch is acknowledged only when
//! every message's report is in and all succeeded.

use crate::config::{client_config, Format, KafkaConfig, PackBy};
use crate::headers::HeaderSet;
use crate::pack::PartitionCounts;
use crate::poller::Polled;
use crate::produce::{Outgoing, TopicHandle};
use crate::tracker::{AttemptId, Tracker};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use usage_core::{
    async_trait, json, Batch, ConfigError, Event, ExportError, Exporter, ExporterContext, ExporterDefaults,
    ExporterFactory, Value,
};

/// Routes delivery reports to the tracker.
pub(crate) struct Reports(Arc<Tracker>);

impl ClientContext for Reports {
    fn error(&self, error: KafkaError, reason: &str) {
        self.0.refusal.note(&error, reason);
    }
}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        self.0
            .record(opaque, result.as_ref().map(|_| ()).map_err(|(e, _)| e.clone()));
    }
}

/// Produces each event as a JSON message to `topic` (per kind), keyed by the event
/// id or a field, with headers `kind` and `event-id` unless `headers` leaves them
/// out (or packs events into NDJSON messages, see
/// [`KafkaConfig::events_per_message`]). A batch is acknowledged only when every
/// message's delivery report succeeded.
pub struct KafkaExporter {
    pub(crate) producer: Arc<BaseProducer<Reports>>,
    /// Polls `producer` for delivery reports while the exporter lives.
    _polled: Polled<Reports>,
    /// Delivery reports of the attempts in flight (up to `batches_in_flight` at once,
    /// each counted apart).
    tracker: Arc<Tracker>,
    topic: String,
    pub(crate) key: String,
    pub(crate) brokers: String,
    pub(crate) events_per_message: usize,
    pub(crate) pack_by: PackBy,
    /// Partitions per topic, for `pack_by = "partition"` and for placing keyed
    /// messages ourselves.
    pub(crate) partitions: PartitionCounts,
    /// Whether a keyed message gets its partition here (CRC-32 of the key, the
    /// partition librdkafka's default partitioner would pick) rather than from
    /// librdkafka, whose CRC-32 (zlib's, byte at a time) cost about 3% of the
    /// sending process with one message per event. False when the settings choose
    /// another partitioner.
    place_keys: bool,
    format: Format,
    pub(crate) max_message_bytes: usize,
    /// The headers each message carries.
    pub(crate) headers: HeaderSet,
    /// librdkafka's handle of each topic produced to so far.
    topics: Mutex<HashMap<String, Arc<TopicHandle<Reports>>>>,
}

impl KafkaExporter {
    /// An exporter from settings; `prefix` names the config section in errors.
    pub fn new(cfg: &KafkaConfig, prefix: &str) -> Result<Self, ConfigError> {
        let headers = HeaderSet::from_config(cfg.headers.as_deref(), cfg.packs(), prefix)?;
        let tracker = Arc::new(Tracker::default());
        let producer: BaseProducer<Reports> = client_config(cfg, prefix)?
            .create_with_context(Reports(tracker.clone()))
            .map_err(|e| {
                // librdkafka reads the TLS files here: name our key, not its property.
                let text = e.to_string();
                let key = [
                    ("ssl.ca.location", ".tls.ca"),
                    ("ssl.certificate.location", ".tls.cert"),
                    ("ssl.key", ".tls.key"),
                ]
                .iter()
                .find(|(property, _)| cfg.tls.is_some() && text.contains(property))
                .map_or(String::new(), |(_, key)| key.to_string());
                ConfigError::key(
                    format!("{prefix}{key}"),
                    format!("invalid Kafka producer settings: {text}"),
                )
            })?;
        let polled = Polled::start(producer, "kafka-reports")
            .map_err(|e| ConfigError::key(prefix, format!("cannot start the Kafka polling thread: {e}")))?;
        Ok(KafkaExporter {
            producer: polled.producer().clone(),
            _polled: polled,
            tracker,
            topic: cfg.topic.clone(),
            key: cfg.key.clone(),
            brokers: cfg.brokers.clone(),
            events_per_message: cfg.events_per_message,
            pack_by: cfg.pack_by,
            partitions: PartitionCounts::default(),
            place_keys: crate::pack::places_keys_like_us(cfg),
            format: cfg.format,
            max_message_bytes: cfg.max_message_bytes,
            headers,
            topics: Mutex::default(),
        })
    }

    pub(crate) fn topic_for(&self, kind: &str) -> String {
        self.topic.replace("{kind}", kind)
    }

    pub(crate) fn key_for<'a>(&self, e: &'a Event, id: &'a str) -> Option<std::borrow::Cow<'a, str>> {
        if self.key == "id" {
            return Some(id.into());
        }
        Some(match e.field(&self.key)? {
            Value::Null | Value::StrMap(_) => return None,
            Value::Str(s) => s.into(),
            Value::I64(v) => v.to_string().into(),
            Value::U64(v) => v.to_string().into(),
            Value::F64(v) => v.to_string().into(),
            Value::Bool(v) => v.to_string().into(),
        })
    }

    /// librdkafka's handle of `topic`, made at its first message and kept.
    pub(crate) fn topic_handle(&self, topic: &str) -> Result<Arc<TopicHandle<Reports>>, RDKafkaErrorCode> {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(handle) = topics.get(topic) {
            return Ok(handle.clone());
        }
        let handle = Arc::new(TopicHandle::new(&self.producer, topic)?);
        topics.insert(topic.to_string(), handle.clone());
        Ok(handle)
    }

    /// Hands one message to librdkafka through `topic`'s handle, waiting while its
    /// bounded queue is full. Returns whether a delivery report will follow; a
    /// message refused at once (or whose topic has no handle) is recorded in the
    /// tracker under `index`.
    pub(crate) async fn produce(
        &self,
        topic: &Result<Arc<TopicHandle<Reports>>, RDKafkaErrorCode>,
        message: Outgoing<'_>,
        attempt: AttemptId,
        index: usize,
    ) -> bool {
        let handle = match topic {
            Ok(handle) => handle,
            Err(code) => {
                self.tracker
                    .refuse(attempt, index, KafkaError::MessageProduction(*code));
                return false;
            }
        };
        loop {
            match handle.produce(&message) {
                Ok(()) => return true,
                // librdkafka's queue is bounded: let it drain, then retry.
                Err(RDKafkaErrorCode::QueueFull) => tokio::time::sleep(Duration::from_millis(2)).await,
                Err(code) => {
                    self.tracker.refuse(attempt, index, KafkaError::MessageProduction(code));
                    return false;
                }
            }
        }
    }

    /// One message per event, keyed, with the chosen headers (`kind`, `event-id`).
    async fn send_each(&self, batch: &Batch, attempt: AttemptId) -> usize {
        let mut sent = 0usize;
        let mut payload = Vec::with_capacity(512);
        let mut index = 0usize;
        for slice in batch.slices() {
            let Some(first) = slice.first() else { continue };
            let topic = self.topic_for(first.kind());
            let partitions = if self.place_keys {
                self.known_partition_count(&topic).await
            } else {
                None
            };
            let handle = self.topic_handle(&topic);
            for e in slice {
                let i = index;
                index += 1;
                payload.clear();
                let mut id_buf = [0u8; 36];
                let id = match self.format {
                    // The line starts with the id: read back, not formatted twice.
                    Format::Json => {
                        json::write_event(&mut payload, e, batch.resource());
                        match json::written_id(&payload) {
                            Some(id) => id,
                            None => e.id().uuid().hyphenated().encode_lower(&mut id_buf),
                        }
                    }
                    Format::StreamTrace => {
                        let id = e.id().uuid().hyphenated().encode_lower(&mut id_buf);
                        crate::stream_trace::write(&mut payload, e, id);
                        id
                    }
                };
                let key = self.key_for(e, id);
                let key = key.as_deref().map(str::as_bytes);
                let message = Outgoing {
                    payload: &payload,
                    key,
                    // Empty keys are librdkafka's to place (at random).
                    partition: key
                        .filter(|k| !k.is_empty())
                        .zip(partitions)
                        .map(|(k, n)| crate::pack::partition_of(k, n)),
                    timestamp_ms: e.ts().as_millis(),
                    headers: self.headers.per_event(e.kind(), id),
                    opaque: attempt.opaque(i),
                };
                if self.produce(&handle, message, attempt, i).await {
                    sent += 1;
                }
            }
        }
        sent
    }
}

/// What a producer error means (review M10). Rights refused, or a topic that does
/// not exist (and is not auto-created): pause, keep the data, probe; an operator
/// fixes it. A topic name Kafka refuses: the batch is refused (dead-lettered with
/// the reason).
/// Anything else (broker down, timeouts, leader changes): retry the batch; messages
/// already delivered are sent again with the same event ids.
pub(crate) fn classify(e: &KafkaError, brokers: &str) -> ExportError {
    use RDKafkaErrorCode as C;
    let message = format!("kafka {brokers}: {e}");
    match e.rdkafka_error_code() {
        Some(
            C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::SaslAuthenticationFailed
            | C::Authentication
            | C::UnknownTopicOrPartition
            | C::UnknownTopic,
        ) => ExportError::paused(message),
        Some(C::InvalidTopic) => ExportError::rejected(message),
        _ => ExportError::retryable(message),
    }
}

#[cfg(test)]
#[test]
fn producer_errors_are_classified_by_code() {
    let kind = |code| match classify(&KafkaError::MessageProduction(code), "b:9092") {
        ExportError::Paused { .. } => "paused",
        ExportError::Rejected { .. } => "rejected",
        ExportError::Retryable { .. } => "retryable",
        _ => "other",
    };
    assert_eq!(kind(RDKafkaErrorCode::TopicAuthorizationFailed), "paused");
    assert_eq!(kind(RDKafkaErrorCode::UnknownTopicOrPartition), "paused");
    assert_eq!(kind(RDKafkaErrorCode::InvalidTopic), "rejected");
    assert_eq!(kind(RDKafkaErrorCode::MessageTimedOut), "retryable");
    assert_eq!(kind(RDKafkaErrorCode::NotLeaderForPartition), "retryable");
}

#[async_trait]
impl Exporter for KafkaExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let Some(attempt) = self.tracker.begin() else {
            return Err(ExportError::retryable(
                "kafka: every attempt slot is taken (an abandoned attempt has not ended yet)",
            ));
        };
        // Packed: message index -> the events it carries.
        let mut packs: Vec<Vec<usize>> = Vec::new();
        let sent = if self.events_per_message > 1 {
            // Partition counts first: a topic without metadata fails the batch
            // before any of it is sent.
            let partitions = self.partitions_of(batch).await?;
            self.send_packed(batch, attempt.id, &partitions, &mut packs).await
        } else {
            self.send_each(batch, attempt.id).await
        };
        // Every message is in librdkafka's queue, in order: the next batch may be
        // produced behind them while their delivery reports come in.
        batch.handed_off();
        attempt.wait_settled(sent).await;
        let (failure, refused) = attempt.outcome();
        let t = &self.tracker;
        if let Some(e) = failure {
            if e.rdkafka_error_code() == Some(RDKafkaErrorCode::UnknownPartition) {
                self.partitions.forget_all();
            }
            // Messages only time out when the brokers refuse the login or the
            // certificate: that needs an operator, not retries.
            if let Some(reason) = t.refusal.current() {
                return Err(ExportError::paused(format!("kafka {}: {reason}", self.brokers)));
            }
            return Err(classify(&e, &self.brokers));
        }
        let mut too_large: Vec<usize> = if self.events_per_message > 1 {
            refused
                .iter()
                .flat_map(|&m| packs.get(m).into_iter().flatten().copied())
                .collect()
        } else {
            refused
        };
        if !too_large.is_empty() {
            too_large.sort_unstable();
            return Err(ExportError::rejected_events(
                too_large,
                "message larger than message.max.bytes (raise it with librdkafka.\"message.max.bytes\" and the topic's max.message.bytes)",
            ));
        }
        Ok(())
    }

    async fn healthcheck(&self) -> Result<(), ExportError> {
        let producer = self.producer.clone();
        let md = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(5))
                .map(|m| m.brokers().len())
        })
        .await
        .map_err(|e| ExportError::retryable(e.to_string()))?;
        if let Some(reason) = self.tracker.refusal.current() {
            if md.is_err() {
                return Err(ExportError::paused(format!("kafka {}: {reason}", self.brokers)));
            }
        }
        match md {
            Ok(n) if n > 0 => {
                self.tracker.refusal.clear();
                Ok(())
            }
            Ok(_) => Err(ExportError::retryable("kafka: no brokers in metadata")),
            Err(e) => Err(ExportError::retryable(format!(
                "kafka {}: metadata request failed: {e}",
                self.brokers
            ))),
        }
    }

    async fn close(&self) -> Result<(), ExportError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(5)))
            .await
            .map_err(|e| ExportError::retryable(e.to_string()))?
            .map_err(|e| ExportError::retryable(format!("kafka flush at close: {e}")))
    }
}

fn build(ctx: &ExporterContext) -> Result<Box<dyn Exporter>, ConfigError> {
    let prefix = format!("exporters.{}", ctx.section.name);
    let cfg: KafkaConfig = ctx.section.parse()?;
    if cfg.key != "id"
        && !usage_core::registered_kinds()
            .iter()
            .any(|s| s.field(&cfg.key).is_some())
    {
        return Err(ConfigError::key(
            format!("{prefix}.key"),
            format!("`{}` is neither \"id\" nor a field of any event kind", cfg.key),
        ));
    }
    if cfg.format == Format::StreamTrace {
        // Daydream's consumers read one envelope per message, keyed by id, and only
        // stream events: anything else on the topic would break them.
        let only_streams = ctx.section.options.events.as_deref() == Some(&["network_event".to_string()][..]);
        let problem = if !only_streams {
            Some((
                "events",
                "format = \"stream_trace\" takes only network_event: set events = [\"network_event\"]",
            ))
        } else if cfg.events_per_message != 1 {
            Some((
                "events_per_message",
                "format = \"stream_trace\" writes one message per event",
            ))
        } else if cfg.key != "id" {
            Some(("key", "format = \"stream_trace\" is keyed by the event id"))
        } else {
            None
        };
        if let Some((key, message)) = problem {
            return Err(ConfigError::key(format!("{prefix}.{key}"), message));
        }
    }
    Ok(Box::new(KafkaExporter::new(&cfg, &prefix)?))
}

/// The `kafka` exporter type.
pub static FACTORY: ExporterFactory = ExporterFactory {
    type_name: "kafka",
    description: "JSON messages to Kafka, topic per kind, acks=all, idempotent producer",
    build,
    defaults: ExporterDefaults {
        batch_max_events: Some(10_000),
        batch_max_bytes: Some(8 << 20),
        flush_interval: Some(Duration::from_millis(200)),
        // Up to four batches at once: the next is produced while the last ones' delivery
        // reports come in, so librdkafka's queue never runs dry between batches.
        batches_in_flight: Some(4),
    },
    enabled_by_default: usage_core::registry::always_enabled,
    check: usage_core::registry::parses_as::<crate::config::KafkaConfig>,
};
