//! # usage-kafka
//!
//! Kafka exporter (librdkafka via `rdkafka`, built from source: no system library
//! needed). Each event is one message:
//!
//! - topic from a template per kind (`topic = "usage.{kind}"`),
//! - key: the event id, or a field (`key = "project"`),
//! - value: the JSON encoding (`docs/encoding.md`),
//! - headers `kind` and `event-id`, timestamp = event time.
//!
//! Or, with `events_per_message = N`, NDJSON messages of up to N events of a kind
//! (one open message per key, bounded by `max_message_bytes`, header `event-count`):
//! far fewer messages for brokers and consumers that read lines.
//!
//! Safe defaults: `acks=all`, idempotent producer, zstd, 5 ms linger, a bounded
//! librdkafka queue. Any librdkafka property can be passed through:
//!
//! ```toml
//! [exporters.events]
//! type = "kafka"
//! brokers = "kafka-1:9092,kafka-2:9092"
//! topic = "usage.{kind}"
//! key = "project"
//! [exporters.events.librdkafka]
//! "security.protocol" = "SASL_SSL"
//! "sasl.mechanisms" = "PLAIN"
//! "sasl.username" = "usage"
//! "sasl.password" = { env = "KAFKA_PASSWORD" }
//! ```
//!
//! A batch is acknowledged only when every message's delivery report succeeded.
//! Broker outages and timeouts are retried by the pipeline; a message larger than
//! `message.max.bytes` is dead-lettered alone while the rest of the batch goes through.

mod config;
mod exporter;
pub mod read;
mod stream_trace;
mod tracker;

pub use config::{Compression, Format, KafkaConfig, Property};
pub use exporter::{KafkaExporter, FACTORY};

usage_core::register_exporter!(FACTORY);
