//! `[exporters.<name>] type = "kafka"` keys.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use usage_core::config::units;
use usage_core::Secret;

/// Message compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// zstd (default).
    #[default]
    Zstd,
    /// lz4.
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
    /// `zstd` (default), `lz4`, `gzip`, `snappy` or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// `acks`: `"all"` (default), `"1"` or `"0"`.
    #[serde(default = "default_acks")]
    pub acks: String,
    /// `linger.ms`: how long librdkafka waits to fill a request (default 5ms).
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
    /// Bound on a packed message's value (default 900KiB, under the 1 MB default
    /// `message.max.bytes` of librdkafka and brokers). Only used when packing.
    #[serde(default = "default_max_message_bytes", deserialize_with = "units::bytes")]
    pub max_message_bytes: usize,
    /// Any librdkafka property, passed through (SASL, TLS, ...). Values may be
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
fn default_events_per_message() -> usize {
    1
}
fn default_max_message_bytes() -> usize {
    900 << 10
}
fn default_acks() -> String {
    "all".into()
}
