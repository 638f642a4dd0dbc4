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
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| Failure::Usage(format!("cannot listen on {addr}: {e}")))?;
        eprintln!(
            "usage gateway listening on http://{} -> exporters: {}",
            listener.local_addr().map(|a| a.to_string()).unwrap_or(addr),
            gateway.pipeline().exporter_names().join(", ")
        );
        let bound = gateway.memory_bound();
        eprintln!(
            "usage gateway memory bound: {} MiB beyond idle ({} MiB per request in flight, {} MiB of connections, {} MiB of queues; docs/operations.md)",
            bound.total >> 20,
            bound.per_request >> 20,
            bound.connections >> 20,
            bound.queues >> 20
        );
        let report = usage_gateway::serve(gateway, listener, stop_signal(), args.drain).await;
        match report {
            Ok(r) => {
                eprintln!("usage gateway stopped: {r}");
                Ok(())
            }
            Err(e) => Err(Failure::Failed(format!("gateway stopped with undelivered events: {e}"))),
        }
    })
}
