//! # usage-gateway
//!
//! The receiving side, run as `usage gateway`: a metrics API that feeds the same
//! pipeline and exporters as an embedded sink.
//!
//! - `POST /v1/metrics`: `{"app"?, "host"?, "events":[...]}` (the usage JSON
//!   encoding, or Daydream reporter events mapped to `network_event`; gzip accepted)
//!   with `Authorization: Bearer <key>`. Keys are compared in constant time and may be
//!   bound to a project. The body size and events per request are bounded; a per-key
//!   token bucket answers 429 with `Retry-After`.
//! - `POST /v1/logs`: OTLP/HTTP logs (protobuf or JSON), the same keys and limits.
//! - Both take a request record by record: an event that cannot be taken is refused
//!   alone, kept in `rejected_dir` with its reason and counted, and named in the
//!   answer (`rejected` list, or OTLP `partial_success`). The answer is 200 only once
//!   the accepted events are durable in the gateway's pipeline (committed to its
//!   spool, or acknowledged by every exporter when there is no spool) and the refused
//!   ones kept. Events without an id get one derived from their content, so a re-sent
//!   request maps to the same ids. A repeated `Idempotency-Key` within the window is
//!   acknowledged without being forwarded again.
//! - OTLP/gRPC (`gateway.otlp_grpc`, default port 4317): the logs service's `Export`
//!   over HTTP/2, through the same steps, answering in gRPC status codes.
//! - `GET /healthz`, `GET /readyz`, `GET /metrics` (Prometheus text), `GET /v1/tap`
//!   (a live sample of accepted events): on `gateway.admin_listen` when set, else on
//!   the ingest listener.
//!
//! See `docs/openapi.yaml` and `docs/operations.md`.

mod accept;
mod auth;
mod body;
pub mod config;
mod grpc;
mod idempotency;
mod memory;
mod metrics_api;
mod metrics_body;
mod otlp;
mod rejected;
mod routes;
mod serve;
mod state;
mod stream_event;
mod tap;

#[cfg(test)]
mod fuzz_tests;

pub use config::{GatewayConfig, KeyConfig};
pub use memory::MemoryBound;
pub use routes::{admin_router, ingest_router, router};
pub use state::Gateway;

use std::sync::Arc;
use usage_core::json::Decoder;
use usage_core::{ConfigError, Pipeline, UsageConfig};

impl Gateway {
    /// Builds the gateway and its pipeline from config (`[gateway]`, `[pipeline]`,
    /// `[spool]`, `[exporters.*]`).
    pub fn new(config: &UsageConfig) -> Result<Arc<Gateway>, ConfigError> {
        let cfg: GatewayConfig = config.gateway()?;
        cfg.validate()?;
        let keys = auth::Keys::new(&cfg)?;
        if config.spool.is_none() {
            tracing::warn!("the gateway has no [spool]: a 200 waits for every exporter to acknowledge");
        }
        let pipeline = Pipeline::from_config(config)?;
        Ok(Arc::new(Gateway {
            pipeline,
            keys,
            idempotency: idempotency::Window::new(cfg.idempotency_window, cfg.idempotency_max_keys),
            decoder: Decoder::default()
                .fill_absent(true)
                .allow_unknown_kinds(cfg.allow_unknown_kinds)
                .limits(cfg.record_limits()),
            counters: Default::default(),
            pipeline_capacity: config.pipeline.queue_capacity,
            rejected: rejected::RejectedStore::new(
                cfg.rejected_dir
                    .clone()
                    .unwrap_or_else(|| config.pipeline.data_dir.join("rejected")),
            ),
            in_flight: tokio::sync::Semaphore::new(cfg.max_in_flight),
            tap: Default::default(),
            cfg,
        }))
    }

    /// The gateway's pipeline (stats, flush).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The most memory this gateway can take beyond its idle size (docs/operations.md).
    pub fn memory_bound(&self) -> MemoryBound {
        MemoryBound::of(&self.cfg, &self.pipeline.stats())
    }

    /// The configured listen address.
    pub fn listen(&self) -> &str {
        &self.cfg.listen
    }

    /// Where OTLP/gRPC is served, when `gateway.otlp_grpc` is on.
    pub fn otlp_grpc_listen(&self) -> Option<&str> {
        self.cfg.otlp_grpc.then_some(self.cfg.otlp_grpc_listen.as_str())
    }

    /// The admin listener's address, when set.
    pub fn admin_listen(&self) -> Option<&str> {
        self.cfg.admin_listen.as_deref()
    }
}

/// The sockets a gateway serves on.
pub struct Listeners {
    /// `/v1/metrics` and OTLP/HTTP `/v1/logs` (and health).
    pub ingest: tokio::net::TcpListener,
    /// OTLP/gRPC, when `gateway.otlp_grpc` is on.
    pub otlp_grpc: Option<tokio::net::TcpListener>,
    /// `/metrics`, health and `/v1/tap`, when `gateway.admin_listen` is set; without
    /// it they are served on `ingest`.
    pub admin: Option<tokio::net::TcpListener>,
}

/// Serves until `shutdown` resolves, then stops taking requests and shuts the
/// pipeline down (delivering what it can within `drain`).
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    drain: std::time::Duration,
) -> Result<usage_core::DeliveryReport, String> {
    let listeners = Listeners {
        ingest: listener,
        otlp_grpc: None,
        admin: None,
    };
    serve_on(gateway, listeners, shutdown, drain).await
}

/// [`serve`] on every listener the config asks for: all stop together.
pub async fn serve_on(
    gateway: Arc<Gateway>,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    drain: std::time::Duration,
) -> Result<usage_core::DeliveryReport, String> {
    use serve::{serve_connections, Protocol};
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stopping = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let cfg = &gateway.cfg;
    // One pool of connection slots for both ingest listeners (the memory bound counts
    // `max_connections` once), and a small one of its own for the admin listener, so
    // metrics and health answer while ingest is saturated.
    let slots = Arc::new(tokio::sync::Semaphore::new(cfg.max_connections.max(1)));
    let admin_slots = Arc::new(tokio::sync::Semaphore::new(memory::ADMIN_CONNECTIONS));
    let separate_admin = listeners.admin.is_some();
    let ingest = serve_connections(
        listeners.ingest,
        routes::ingest_router(gateway.clone(), !separate_admin),
        Protocol::Http1,
        cfg,
        slots.clone(),
        stopping(),
    );
    let grpc = async {
        if let Some(l) = listeners.otlp_grpc {
            let routes = grpc::routes(gateway.clone());
            serve_connections(l, routes, Protocol::Http2, cfg, slots.clone(), stopping()).await;
        }
    };
    let admin = async {
        if let Some(l) = listeners.admin {
            let routes = admin_router(gateway.clone());
            serve_connections(l, routes, Protocol::Http1, cfg, admin_slots, stopping()).await;
        }
    };
    let signal = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    tokio::join!(ingest, grpc, admin, signal);
    gateway.pipeline.shutdown(drain).await.map_err(|e| e.to_string())
}
