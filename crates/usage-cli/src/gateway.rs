//! `usage gateway`: serve the ingest API until Ctrl-C or SIGTERM.

use crate::{load_config, Failure, Outcome};
use std::path::PathBuf;
use std::time::Duration;
use usage_gateway::Gateway;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Listen address (overrides gateway.listen).
    #[arg(long)]
    listen: Option<String>,
    /// Serve OTLP/gRPC here (turns gateway.otlp_grpc on, overrides gateway.otlp_grpc_listen).
    #[arg(long, value_name = "ADDR")]
    grpc_listen: Option<String>,
    /// Serve /metrics, health and the tap here (overrides gateway.admin_listen).
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<String>,
    /// How long shutdown may take to deliver what is queued.
    #[arg(long, default_value = "30s", value_parser = usage_core::config::units::parse_duration)]
    drain: Duration,
}

async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn bind(addr: &str, key: &str) -> Result<tokio::net::TcpListener, Failure> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::Usage(format!("cannot listen on {addr} ({key}): {e}")))
}

pub(crate) fn run(args: Args, config: Option<&PathBuf>) -> Outcome {
    let config = load_config(config)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("usage-gateway")
        .build()
        .map_err(|e| Failure::Failed(format!("cannot start a runtime: {e}")))?;
    rt.block_on(async {
        let gateway = Gateway::new(&config)?;
        let addr = args.listen.clone().unwrap_or_else(|| gateway.listen().to_string());
        let ingest = bind(&addr, "gateway.listen").await?;
        let grpc_addr = args.grpc_listen.clone().or_else(|| gateway.otlp_grpc_listen().map(str::to_string));
        let otlp_grpc = match &grpc_addr {
            Some(a) => Some(bind(a, "gateway.otlp_grpc_listen").await?),
            None => None,
        };
        let admin_addr = args.admin_listen.clone().or_else(|| gateway.admin_listen().map(str::to_string));
        let admin = match &admin_addr {
            Some(a) => Some(bind(a, "gateway.admin_listen").await?),
            None => None,
        };
        let shown = |l: &tokio::net::TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
        eprintln!(
            "usage gateway listening on http://{} -> exporters: {}",
            shown(&ingest),
            gateway.pipeline().exporter_names().join(", ")
        );
        if let Some(l) = &otlp_grpc {
            eprintln!("usage gateway OTLP/gRPC on {}", shown(l));
        }
        if let Some(l) = &admin {
            eprintln!("usage gateway admin (metrics, health, tap) on http://{}", shown(l));
        }
        let bound = gateway.memory_bound();
        eprintln!(
            "usage gateway memory bound: {} MiB beyond idle ({} MiB per request in flight, {} MiB of connections, {} MiB of queues; docs/operations.md)",
            bound.total >> 20,
            bound.per_request >> 20,
            bound.connections >> 20,
            bound.queues >> 20
        );
        let listeners = usage_gateway::Listeners { ingest, otlp_grpc, admin };
        let report = usage_gateway::serve_on(gateway, listeners, stop_signal(), args.drain).await;
        match report {
            Ok(r) => {
                eprintln!("usage gateway stopped: {r}");
                Ok(())
            }
            Err(e) => Err(Failure::Failed(format!("gateway stopped with undelivered events: {e}"))),
        }
    })
}
