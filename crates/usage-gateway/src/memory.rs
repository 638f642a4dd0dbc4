//! The most memory the gateway can take, as a formula of its limits (the table in
//! docs/operations.md): what each request in flight may hold, what each open
//! connection may buffer, and the pipeline's queue bounds.

use crate::config::GatewayConfig;
use crate::idempotency::ENTRY_BYTES;
use crate::serve::MAX_HEAD_BYTES;
use usage_core::{Event, OwnedValue, PipelineStats};
use usage_otlp_proto::receive::{working_memory_bound, ReceiveOptions};

/// Bytes of one event beyond its fields: the record header and its `Arc`s.
const EVENT_OVERHEAD: usize = 64;
/// A kept record's line beyond its body: time, key, index, reason and message.
const REJECTED_LINE: usize = 512;
/// Connections the admin listener serves at once (its own pool, apart from
/// `max_connections`, so it answers while ingest is saturated).
pub(crate) const ADMIN_CONNECTIONS: usize = 16;

/// The parts of the bound, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryBound {
    /// One request in flight: its body as sent, inflated, decoded and as events.
    pub per_request: u64,
    /// `max_in_flight` of them.
    pub requests: u64,
    /// Open connections' head buffers (read and write): `max_connections` shared by
    /// the ingest and OTLP/gRPC listeners, plus the admin listener's own 16.
    pub connections: u64,
    /// The pipeline's queues: ingest plus every exporter's.
    pub queues: u64,
    /// The idempotency windows: every API key's remembered keys.
    pub idempotency: u64,
    /// Everything above: the most the gateway holds beyond its idle size.
    pub total: u64,
}

impl MemoryBound {
    /// The bound for these limits and this pipeline's queue bounds.
    pub fn of(cfg: &GatewayConfig, pipeline: &PipelineStats) -> MemoryBound {
        let opts = ReceiveOptions {
            max_events: cfg.max_events,
            allow_unknown_kinds: cfg.allow_unknown_kinds,
            limits: cfg.record_limits(),
        };
        // A request holds the body as sent, its inflated copy, the strings its events
        // copy out of that (at most as many bytes), a decoded tree (OTLP) or one
        // event's JSON tree at a time (metrics, within max_decode_bytes) with the
        // records' views, and the events themselves.
        let event = std::mem::size_of::<Event>()
            + EVENT_OVERHEAD
            + cfg.max_attributes.saturating_mul(std::mem::size_of::<OwnedValue>());
        // Refused records kept whole (within max_decode_bytes), then their NDJSON
        // file (base64 grows protobuf by a third; each line adds its reason).
        let kept = cfg.max_decode_bytes;
        let rejected = kept
            .saturating_add(kept / 3 * 4)
            .saturating_add(cfg.max_events.saturating_mul(REJECTED_LINE));
        let per_request = cfg
            .max_body
            .saturating_add(cfg.max_inflated_body.saturating_mul(2))
            .saturating_add(working_memory_bound(&opts))
            .saturating_add(cfg.max_events.saturating_mul(event))
            .saturating_add(rejected) as u64;
        let requests = per_request.saturating_mul(cfg.max_in_flight as u64);
        let admin = if cfg.admin_listen.is_some() {
            ADMIN_CONNECTIONS
        } else {
            0
        };
        let connections = (cfg.max_connections.saturating_add(admin) as u64).saturating_mul(2 * MAX_HEAD_BYTES as u64);
        let queues = pipeline
            .exporters
            .iter()
            .fold(pipeline.queue_max_bytes, |sum, e| sum.saturating_add(e.queue_max_bytes));
        // Each remembered key: its entry, and up to two places in the expiry order.
        let idempotency = (cfg.keys.len() as u64)
            .saturating_mul(cfg.idempotency_max_keys as u64)
            .saturating_mul((ENTRY_BYTES + 2 * 32) as u64);
        MemoryBound {
            per_request,
            requests,
            connections,
            queues,
            idempotency,
            total: requests
                .saturating_add(connections)
                .saturating_add(queues)
                .saturating_add(idempotency),
        }
    }
}
