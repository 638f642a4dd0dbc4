//! The listener: at most `max_connections` connections, each with a header read
//! timeout and a bounded read buffer, served by hyper with the gateway's routes;
//! a graceful stop lets requests in progress finish.

use crate::config::GatewayConfig;
use axum::Router;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// hyper's read buffer per connection, which bounds a request head. OTLP and
/// metrics clients send heads of a few hundred bytes.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How long requests in progress may take to finish after a stop.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// What one HTTP/2 (OTLP/gRPC) connection may buffer, kept within the
/// 2 x `MAX_HEAD_BYTES` per connection the memory bound counts: 4 streams' header
/// blocks of 8 KiB, a 64 KiB receive window for the whole connection (a body is
/// read only once its request holds a `max_in_flight` slot) and 16 KiB of answers.
const MAX_STREAMS: u32 = 4;
const H2_HEADER_BYTES: u32 = 8 << 10;
const H2_WINDOW_BYTES: u32 = 64 << 10;
const H2_SEND_BYTES: usize = 16 << 10;
const _: () = assert!((MAX_STREAMS * H2_HEADER_BYTES + H2_WINDOW_BYTES) as usize + H2_SEND_BYTES <= 2 * MAX_HEAD_BYTES);

/// The protocol a listener speaks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// HTTP/1.1: the ingest API, OTLP/HTTP and the admin listener.
    Http1,
    /// HTTP/2 with prior knowledge (h2c): OTLP/gRPC.
    Http2,
}

/// Serves `routes` on `listener` until `shutdown` resolves. `connections` holds the
/// slots of `max_connections`, shared by every listener of the gateway.
pub(crate) async fn serve_connections(
    listener: TcpListener,
    routes: Router,
    protocol: Protocol,
    cfg: &GatewayConfig,
    connections: Arc<Semaphore>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(cfg.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(H2_HEADER_BYTES)
        .max_concurrent_streams(MAX_STREAMS)
        .initial_connection_window_size(H2_WINDOW_BYTES)
        .initial_stream_window_size(H2_WINDOW_BYTES)
        .max_send_buf_size(H2_SEND_BYTES)
        // Idle gRPC connections live long: pings find the dead ones.
        .keep_alive_interval(Some(Duration::from_secs(60)))
        .keep_alive_timeout(cfg.header_timeout);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // Waiting for a slot before accepting: excess clients wait in the kernel's
        // backlog, costing the gateway nothing.
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(routes.clone());
        let io = TokioIo::new(stream);
        match protocol {
            Protocol::Http1 => {
                let conn = graceful.watch(h1.serve_connection(io, service));
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(permit);
                });
            }
            Protocol::Http2 => {
                let conn = graceful.watch(h2.serve_connection(io, service));
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(STOP_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in progress after {STOP_GRACE:?}: stopping anyway");
    }
}
