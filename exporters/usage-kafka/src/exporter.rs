//! The Kafka exporter: one JSON message per event, acknowledged per batch.

use crate::config::{KafkaConfig, Property};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use std::collections::VecDeque;
use std::time::Duration;
use usage_core::{
    async_trait, json, Batch, ConfigError, Event, ExportError, Exporter, ExporterContext, ExporterDefaults,
    ExporterFactory, Value,
};

/// Produces each event as a JSON message to `topic` (per kind), keyed by the event
/// id or a field, with headers `kind` and `event-id`. A batch is acknowledged only
/// when every message's delivery report succeeded.
pub struct KafkaExporter {
    producer: FutureProducer,
    topic: String,
    key: String,
    brokers: String,
}

/// Builds the producer configuration (defaults, then the user's passthrough properties).
pub(crate) fn client_config(cfg: &KafkaConfig, prefix: &str) -> Result<ClientConfig, ConfigError> {
    if cfg.brokers.trim().is_empty() {
        return Err(ConfigError::key(format!("{prefix}.brokers"), "must not be empty"));
    }
    if !["all", "-1", "1", "0"].contains(&cfg.acks.as_str()) {
        return Err(ConfigError::key(
            format!("{prefix}.acks"),
            format!("{:?} is not one of \"all\", \"1\", \"0\"", cfg.acks),
        ));
    }
    if !cfg.topic.contains("{kind}") && cfg.topic.contains('{') {
        return Err(ConfigError::key(
            format!("{prefix}.topic"),
            "the only placeholder is {kind}",
        ));
    }
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("acks", &cfg.acks)
        .set(
            "enable.idempotence",
            if cfg.acks == "all" || cfg.acks == "-1" {
                "true"
            } else {
                "false"
            },
        )
        .set("compression.type", cfg.compression.as_str())
        .set(
            "linger.ms",
            cfg.linger.unwrap_or(Duration::from_millis(5)).as_millis().to_string(),
        )
        .set("batch.num.messages", cfg.batch_messages.unwrap_or(10_000).to_string())
        .set(
            "message.timeout.ms",
            cfg.message_timeout
                .unwrap_or(Duration::from_secs(8))
                .as_millis()
                .to_string(),
        )
        .set(
            "queue.buffering.max.kbytes",
            (cfg.max_queue_bytes.unwrap_or(64 << 20) / 1024).max(1).to_string(),
        )
        .set("queue.buffering.max.messages", "200000");
    for (k, v) in &cfg.librdkafka {
        let value = match v {
            Property::Text(s) => s.clone(),
            Property::Int(i) => i.to_string(),
            Property::Float(f) => f.to_string(),
            Property::Bool(b) => b.to_string(),
            Property::Secret(s) => s
                .expose()
                .map_err(|e| ConfigError::key(format!("{prefix}.librdkafka.{k}"), e))?,
        };
        c.set(k, value);
    }
    Ok(c)
}

impl KafkaExporter {
    /// An exporter from settings; `prefix` names the config section in errors.
    pub fn new(cfg: &KafkaConfig, prefix: &str) -> Result<Self, ConfigError> {
        let producer: FutureProducer = client_config(cfg, prefix)?
            .create()
            .map_err(|e| ConfigError::key(prefix, format!("invalid Kafka producer settings: {e}")))?;
        Ok(KafkaExporter {
            producer,
            topic: cfg.topic.clone(),
            key: cfg.key.clone(),
            brokers: cfg.brokers.clone(),
        })
    }

    fn topic_for(&self, kind: &str) -> String {
        self.topic.replace("{kind}", kind)
    }

    fn key_for(&self, e: &Event) -> Option<String> {
        if self.key == "id" {
            return Some(e.id().to_string());
        }
        match e.field(&self.key)? {
            Value::Null => None,
            Value::Str(s) => Some(s.to_string()),
            Value::I64(v) => Some(v.to_string()),
            Value::U64(v) => Some(v.to_string()),
            Value::F64(v) => Some(v.to_string()),
            Value::Bool(v) => Some(v.to_string()),
            Value::StrMap(_) => None,
        }
    }
}

/// How one message ended.
enum Outcome {
    Delivered,
    TooLarge,
    Failed(KafkaError),
}

fn classify(e: KafkaError) -> Outcome {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => Outcome::TooLarge,
        _ => Outcome::Failed(e),
    }
}

async fn settle(fut: DeliveryFuture) -> Outcome {
    match fut.await {
        Ok(Ok(_)) => Outcome::Delivered,
        Ok(Err((e, _))) => classify(e),
        Err(_) => Outcome::Failed(KafkaError::Canceled),
    }
}

#[async_trait]
impl Exporter for KafkaExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let mut in_flight: VecDeque<(usize, DeliveryFuture)> = VecDeque::with_capacity(batch.len());
        let mut too_large = Vec::new();
        let mut failure: Option<KafkaError> = None;
        let mut note = |i: usize, o: Outcome, failure: &mut Option<KafkaError>| match o {
            Outcome::Delivered => {}
            Outcome::TooLarge => too_large.push(i),
            Outcome::Failed(e) => {
                failure.get_or_insert(e);
            }
        };
        let mut payload = Vec::with_capacity(512);
        let mut index = 0usize;
        for slice in batch.slices() {
            let Some(first) = slice.first() else { continue };
            let topic = self.topic_for(first.kind());
            for e in slice {
                let i = index;
                index += 1;
                payload.clear();
                json::write_event(&mut payload, e, batch.resource());
                let id = e.id().to_string();
                let key = self.key_for(e);
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "kind",
                        value: Some(e.kind()),
                    })
                    .insert(Header {
                        key: "event-id",
                        value: Some(&id),
                    });
                let mut record = FutureRecord::to(&topic)
                    .payload(&payload)
                    .headers(headers)
                    .timestamp(e.ts().as_millis());
                if let Some(k) = key.as_deref() {
                    record = record.key(k);
                }
                loop {
                    match self.producer.send_result(record) {
                        Ok(fut) => {
                            in_flight.push_back((i, fut));
                            break;
                        }
                        Err((err, back)) if err.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                            // librdkafka's queue is bounded: wait for the oldest message, then retry.
                            record = back;
                            match in_flight.pop_front() {
                                Some((j, fut)) => note(j, settle(fut).await, &mut failure),
                                None => tokio::time::sleep(Duration::from_millis(5)).await,
                            }
                        }
                        Err((err, _)) => {
                            note(i, classify(err), &mut failure);
                            break;
                        }
                    }
                }
            }
        }
        while let Some((j, fut)) = in_flight.pop_front() {
            note(j, settle(fut).await, &mut failure);
        }
        if let Some(e) = failure {
            // Broker down, timeouts, leader changes: retry the batch. Messages already
            // delivered are sent again with the same event ids.
            return Err(ExportError::retryable(format!("kafka {}: {e}", self.brokers)));
        }
        if !too_large.is_empty() {
            return Err(ExportError::rejected_events(
                too_large,
                "message larger than message.max.bytes (raise it with librdkafka.\"message.max.bytes\" and the topic's max.message.bytes)",
            ));
        }
        Ok(())
    }

    async fn healthcheck(&self) -> Result<(), ExportError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(5))
                .map(|m| m.brokers().len())
        })
        .await
        .map_err(|e| ExportError::retryable(e.to_string()))?
        .map_err(|e| ExportError::retryable(format!("kafka {}: metadata request failed: {e}", self.brokers)))
        .and_then(|n| {
            if n == 0 {
                Err(ExportError::retryable("kafka: no brokers in metadata"))
            } else {
                Ok(())
            }
        })
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
    },
};
