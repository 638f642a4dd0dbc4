//! The built-in kinds: what operators of RPC gateways and streaming services record.

use super::value::{StrMap, Text};

crate::usage_event! {
    #[usage(kind = "relay_usage", inline = Relay)]
    /// One relay (request forwarded to a provider): the billable unit.
    ///
    /// `cu` is the compute units charged. A relay that failed before reaching a
    /// provider has `cu = 0` and `success = false`.
    ///
    /// ```
    /// use usage_core::{RelayUsage, UsageSink};
    /// let sink = UsageSink::noop();
    /// sink.emit(RelayUsage {
    ///     project: "acme".into(),
    ///     chain: "ETH1".into(),
    ///     api_method: "eth_call".into(),
    ///     cu: 10,
    ///     success: true,
    ///     ..RelayUsage::default()
    /// });
    /// ```
    #[derive(Default)]
    pub struct RelayUsage {
        /// Project (customer) the relay is billed to.
        pub project: Text,
        /// Chain id, e.g. `ETH1`.
        pub chain: Text,
        /// API interface, e.g. `jsonrpc`, `rest`, `grpc`.
        pub api_interface: Text,
        /// Method, e.g. `eth_call`.
        pub api_method: Text,
        /// Compute units charged.
        pub cu: u64,
        /// End-to-end latency in milliseconds.
        pub latency_ms: u64,
        /// Whether the relay succeeded.
        pub success: bool,
        /// Served from cache.
        pub cache_hit: bool,
        /// A state-changing call (e.g. `eth_sendRawTransaction`).
        pub is_write: bool,
        /// Needed an archive node.
        pub is_archive: bool,
        /// Part of a JSON-RPC batch.
        pub is_batch: bool,
        /// A debug/trace call.
        pub is_debug_trace: bool,
        /// Extra hedged requests sent.
        pub hedge_count: u32,
        /// Provider that served it.
        pub provider: Text,
        /// Request origin (e.g. the `Origin` header).
        pub origin: Text,
    }
}

crate::usage_event! {
    #[usage(kind = "optimizer_qos")]
    /// One sample per (chain, provider) per sampling tick of the provider optimizer.
    /// NaN and ±Inf scores become 0 when the event is built.
    #[derive(Default)]
    pub struct OptimizerQos {
        /// Provider address.
        pub provider: Text,
        /// Host of the consumer doing the sampling.
        pub consumer_hostname: Text,
        /// Consumer's public address.
        pub consumer_pub_address: Text,
        /// Chain id.
        pub chain_id: Text,
        /// Consumer geolocation, Lava's numeric geolocation code (int64 on the wire).
        pub geo_location: i64,
        /// Epoch number.
        pub epoch: i64,
        /// Provider's index in the pairing list.
        pub entry_index: i64,
        /// Provider stake.
        pub provider_stake: i64,
        /// Availability score used for selection.
        pub selection_availability: f64,
        /// Latency score used for selection.
        pub selection_latency: f64,
        /// Sync score used for selection.
        pub selection_sync: f64,
        /// Stake score used for selection.
        pub selection_stake: f64,
        /// Composite selection score.
        pub selection_composite: f64,
        /// Availability's share of the composite.
        pub availability_contribution: f64,
        /// Latency's share of the composite.
        pub latency_contribution: f64,
        /// Sync's share of the composite.
        pub sync_contribution: f64,
        /// Stake's share of the composite.
        pub stake_contribution: f64,
    }
}

crate::usage_event! {
    #[usage(kind = "network_event")]
    /// A stream lifecycle trace: `stream_started`, `stream_stopped`, `error`, ...
    ///
    /// Daydream's reporter events (`{"type","data","id","timestamp"}` on
    /// `/v1/metrics`) arrive as this kind: `data` keeps their payload verbatim.
    #[derive(Default)]
    pub struct NetworkEvent {
        /// What happened, e.g. `stream_started`.
        pub event_type: Text,
        /// Stream id.
        pub stream_id: Text,
        /// Pipeline the stream belongs to.
        pub pipeline: Text,
        /// Free-form string attributes.
        pub attributes: StrMap,
        /// The producer's original trace payload as JSON text, byte for byte (nested
        /// objects and arrays included), when it sent one.
        pub data: Option<Text>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventKind, FieldType};

    #[test]
    fn builtin_schemas_are_valid_and_registered() {
        for s in [RelayUsage::schema(), OptimizerQos::schema(), NetworkEvent::schema()] {
            s.validate().unwrap();
            assert_eq!(crate::kind_schema(&s.kind), Some(s));
        }
        assert_eq!(RelayUsage::schema().fields.len(), 15);
        assert_eq!(OptimizerQos::schema().fields.len(), 17);
        assert_eq!(
            NetworkEvent::schema().field("attributes").unwrap().ty,
            FieldType::StrMap
        );
        crate::event::kind::validate_registered_kinds().unwrap();
    }

    #[test]
    fn qos_non_finite_scores_become_zero_when_built() {
        let ev = crate::Event::new(OptimizerQos {
            selection_latency: f64::NAN,
            selection_sync: f64::INFINITY,
            stake_contribution: f64::NEG_INFINITY,
            selection_composite: 0.75,
            ..OptimizerQos::default()
        });
        let q = ev.downcast_ref::<OptimizerQos>().unwrap();
        assert_eq!(
            (q.selection_latency, q.selection_sync, q.stake_contribution),
            (0.0, 0.0, 0.0)
        );
        assert_eq!(q.selection_composite, 0.75);
    }
}
