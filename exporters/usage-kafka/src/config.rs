//! `[exporters.<name>] type = "kafka"` keys.

pub use crate::security::{SaslConfig, SaslMechanism, Tls, TlsConfig};
use rdkafka::config::ClientConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use usage_core::config::units;
use usage_core::{ConfigError, Secret};

/// librdkafka's `linger.ms` with one message per event, unless `linger` says
/// otherwise. Not librdkafka's 5 ms: an idempotent librdkafka producer has one
/// produce request in flight per partition, and while it waits for that response
/// its broker thread polls without sleeping whenever queued messages are older
/// than `linger.ms` (behind four batches in flight they wait far longer than 5 ms
/// under load). Measured, the gateway taking 1M records into Kafka: with 5 ms its
/// broker thread made 1.15-1.5M poll calls and the process used about 20% more CPU
/// than with 200 ms (about 1,100 calls; 100 ms still spun at times, 13k-1.66M).
/// Under load requests still fill by size (`batch.size`, `batch.num.messages`); at
/// low rates a message waits up to this long, after the batch's `flush_interval`.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(200);

/// `linger.ms` when packing events into messages, unless `linger` says otherwise:
/// a batch is then a few large messages that rarely fill a request, so a long
/// linger held every batch back (1M events packed 1,000 per message: 1.18-1.22M
/// events/s with 5 ms, 0.68-0.77M with 200 ms), and packed messages are too few
/// for the spin above to cost much.
pub const DEFAULT_PACKED_LINGER: Duration = Duration::from_millis(5);

/// Message compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// zstd: smaller messages, more CPU.
    Zstd,
    /// lz4 (default): the least CPU per event (measured: about 15% more events/s
    /// than zstd from one 2-core host, see docs/kafka.md).
    #[default]
    Lz4,
    /// gzip.
    Gzip,
    /// snappy.
    Snappy,
    /// No compression.
    None,
}

impl Compression {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::None => "none",
        }
    }
}

/// A librdkafka property value: a scalar, or a secret from env/file. Its `Debug`
/// shows no text value: a passthrough `sasl.password` may be written inline.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum Property {
    /// Text.
    Text(String),
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// `{ env = "VAR" }` or `{ file = "/path" }`.
    Secret(Secret),
}

impl std::fmt::Debug for Property {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Property::Text(t) => write!(f, "Text(<{} chars>)", t.chars().count()),
            Property::Int(v) => write!(f, "Int({v})"),
            Property::Float(v) => write!(f, "Float({v})"),
            Property::Bool(v) => write!(f, "Bool({v})"),
            Property::Secret(s) => write!(f, "{s:?}"),
        }
    }
}

#[cfg(test)]
#[test]
fn passthrough_text_values_stay_out_of_debug() {
    let p = Property::Text("hunter2".into());
    assert_eq!(format!("{p:?}"), "Text(<7 chars>)");
}

/// What a message's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The usage JSON encoding of the event (default).
    #[default]
    Json,
    /// The envelope Daydream's consumers of `network_events` read:
    /// `{"id","type":"stream_trace","timestamp":"<ms>","data":{...}}`, keyed by id.
    /// For `network_event` only.
    StreamTrace,
}

/// How packed messages group events (`events_per_message > 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PackBy {
    /// One open message per key value, keyed by it (default). With hundreds of
    /// keys per batch, messages stay small.
    #[default]
    Key,
    /// One open message per partition: each event goes to the partition its key
    /// would go to alone (CRC-32 of the key, librdkafka's default partitioner), so a
    /// key's events stay in order on one partition. Messages carry no key: the key
    /// is in each line.
    Partition,
}

/// The Kafka exporter's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`, e.g. `"broker-1:9092,broker-2:9092"`.
    pub brokers: String,
    /// Topic template; `{kind}` is replaced by the event kind.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// The message value: `"json"` (default) or `"stream_trace"` (Daydream's envelope).
    #[serde(default)]
    pub format: Format,
    /// Message key: `"id"` (the event id, default) or the name of a field, e.g. `"project"`.
    #[serde(default = "default_key")]
    pub key: String,
    /// `lz4` (default), `zstd`, `gzip`, `snappy` or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// `acks`: `"all"` (default), `"1"` or `"0"`.
    #[serde(default = "default_acks")]
    pub acks: String,
    /// `linger.ms`: how long librdkafka waits to fill a request (default
    /// [`DEFAULT_LINGER`], 200ms, with one message per event;
    /// [`DEFAULT_PACKED_LINGER`], 5ms, when packing).
    #[serde(default, deserialize_with = "units::opt_duration")]
    pub linger: Option<Duration>,
    /// `batch.num.messages` (default 10000).
    pub batch_messages: Option<usize>,
    /// `message.timeout.ms`: how long a message may wait for its ack (default 8s,
    /// below the pipeline's 10 s export timeout).
    #[serde(default, deserialize_with = "units::opt_duration")]
    pub message_timeout: Option<Duration>,
    /// Bound on librdkafka's own queue (`queue.buffering.max.kbytes`, default 64MiB).
    #[serde(default, deserialize_with = "units::opt_bytes")]
    pub max_queue_bytes: Option<usize>,
    /// Events per message (default 1: one message per event). Above 1, a kind's
    /// events are packed into NDJSON messages of up to this many events and
    /// `max_message_bytes`, one message per key (no key when `key = "id"`), with
    /// headers `kind`, `event-count` and `content-type: application/x-ndjson`.
    #[serde(default = "default_events_per_message")]
    pub events_per_message: usize,
    /// How packed messages group events: `"key"` (default, one message per key
    /// value) or `"partition"` (one per partition the keys hash to; for keys with
    /// hundreds of values).
    #[serde(default)]
    pub pack_by: PackBy,
    /// Bound on a packed message's value (default 900KiB, under the 1 MB default
    /// `message.max.bytes` of librdkafka and brokers). Only used when packing.
    #[serde(default = "default_max_message_bytes", deserialize_with = "units::bytes")]
    pub max_message_bytes: usize,
    /// The headers each message carries (default: all of its shape's). One message
    /// per event: `kind`, `event-id`; packed: `kind`, `event-count`, `content-type`.
    /// `[]` writes none: the value carries the id and kind either way.
    pub headers: Option<Vec<String>>,
    /// Encryption: `true`, or `{ ca, cert, key, key_password, verify_hostname }`.
    /// On by default when `sasl` is set.
    pub tls: Option<Tls>,
    /// Login: `{ mechanism = "SCRAM-SHA-512", username, password = { env = "VAR" } }`.
    pub sasl: Option<SaslConfig>,
    /// Any other librdkafka property, passed through. Values may be
    /// `{ env = "VAR" }` or `{ file = "/path" }` for secrets.
    #[serde(default)]
    pub librdkafka: BTreeMap<String, Property>,
}

fn default_topic() -> String {
    "usage.{kind}".into()
}
fn default_key() -> String {
    "id".into()
}
impl KafkaConfig {
    /// Whether events are packed into NDJSON messages (`events_per_message > 1`).
    pub fn packs(&self) -> bool {
        self.events_per_message > 1
    }

    /// `linger` as set, else the default for the message shape.
    fn linger_or_default(&self) -> Duration {
        self.linger.unwrap_or(if self.packs() {
            DEFAULT_PACKED_LINGER
        } else {
            DEFAULT_LINGER
        })
    }
}

fn default_events_per_message() -> usize {
    1
}
fn default_max_message_bytes() -> usize {
    900 << 10
}
fn default_acks() -> String {
    "all".into()
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
    if cfg.events_per_message == 0 {
        return Err(ConfigError::key(
            format!("{prefix}.events_per_message"),
            "must be at least 1",
        ));
    }
    if cfg.pack_by == PackBy::Partition {
        if cfg.events_per_message == 1 {
            return Err(ConfigError::key(
                format!("{prefix}.pack_by"),
                "pack_by = \"partition\" packs messages: set events_per_message above 1",
            ));
        }
        // Packed messages follow librdkafka's default partitioner (CRC-32 of the
        // key); another partitioner would put a key's lone messages elsewhere.
        if let Some(Property::Text(p)) = cfg.librdkafka.get("partitioner") {
            if p != "consistent_random" && p != "consistent" {
                return Err(ConfigError::key(
                    format!("{prefix}.librdkafka.partitioner"),
                    format!(
                        "{p:?} does not place keys by CRC-32 as pack_by = \"partition\" does: \
                         drop it or use \"consistent_random\""
                    ),
                ));
            }
        }
    }
    if cfg.max_message_bytes < 1024 {
        return Err(ConfigError::key(
            format!("{prefix}.max_message_bytes"),
            format!(
                "{} bytes is too small for a packed message (at least 1KiB)",
                cfg.max_message_bytes
            ),
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
        .set("linger.ms", cfg.linger_or_default().as_millis().to_string())
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
    let passthrough: Vec<&str> = cfg.librdkafka.keys().map(String::as_str).collect();
    if let Some(warning) = crate::security::apply(cfg.tls.as_ref(), cfg.sasl.as_ref(), &passthrough, prefix, &mut c)? {
        tracing::warn!("{warning}");
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linger_ms(v: serde_json::Value) -> Option<String> {
        let cfg: KafkaConfig = serde_json::from_value(v).expect("config");
        let c = client_config(&cfg, "exporters.k").expect("client config");
        c.get("linger.ms").map(str::to_string)
    }

    #[test]
    fn linger_is_200ms_one_message_per_event_and_5ms_packed_unless_set() {
        assert_eq!(linger_ms(serde_json::json!({"brokers": "b"})).as_deref(), Some("200"));
        let packed = serde_json::json!({"brokers": "b", "events_per_message": 1000});
        assert_eq!(linger_ms(packed).as_deref(), Some("5"));
        let set = serde_json::json!({"brokers": "b", "linger": "20ms"});
        assert_eq!(linger_ms(set).as_deref(), Some("20"));
        let set_packed = serde_json::json!({"brokers": "b", "events_per_message": 1000, "linger": "50ms"});
        assert_eq!(linger_ms(set_packed).as_deref(), Some("50"));
    }
}
