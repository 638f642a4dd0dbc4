//! # usage-kafka
//!
//! Kafka exporter (librdkafka via `rdkafka`, built from source: no system library
//! needed). Each event is one message:
//!
//! - topic from a template per kind (`topic = "usage.{kind}"`),
//! - key: the event id, or a field (`key = "project"`),
//! - value: the JSON encoding (`docs/encoding.md`),
//! - headers `kind` and `event-id` (`headers` chooses), timestamp = event time.
//!
//! Or, with `events_per_message = N`, NDJSON messages of up to N events of a kind
//! (one open message per key, bounded by `max_message_bytes`, header `event-count`):
//! far fewer messages for brokers and consumers that read lines. With hundreds of
//! keys, `pack_by = "partition"` packs per partition instead: each event still lands
//! on the partition its key would pick alone.
//!
//! Safe defaults: `acks=all`, idempotent producer, lz4, a 200 ms linger with one
//! message per event and 5 ms packed ([`DEFAULT_LINGER`], [`DEFAULT_PACKED_LINGER`]),
//! a bounded librdkafka queue. Secured clusters take `tls` and `sasl` (librdkafka's
//! own OpenSSL is built in), and any other librdkafka property can be passed through:
//!
//! ```toml
//! [exporters.events]
//! type = "kafka"
//! brokers = "kafka-1:9092,kafka-2:9092"
//! topic = "usage.{kind}"
//! key = "project"
//! sasl = { mechanism = "SCRAM-SHA-512", username = "usage", password = { env = "KAFKA_PASSWORD" } }
//! [exporters.events.librdkafka]
//! "linger.ms" = 20
//! ```
//!
//! A batch is acknowledged only when every message's delivery report succeeded.
//! Broker outages and timeouts are retried by the pipeline; a message larger than
//! `message.max.bytes` is dead-lettered alone while the rest of the batch goes through.

mod config;
mod exporter;
mod headers;
mod pack;
#[cfg(test)]
mod place_tests;
mod poller;
mod produce;
pub mod read;
mod refusal;
mod security;
mod stream_trace;
mod tracker;

pub use config::{
    Compression, Format, KafkaConfig, PackBy, Property, SaslConfig, SaslMechanism, Tls, TlsConfig, DEFAULT_LINGER,
    DEFAULT_PACKED_LINGER,
};
pub use exporter::{KafkaExporter, FACTORY};

usage_core::register_exporter!(FACTORY);
