//! A proxy or load balancer in front of ClickHouse answers with a bare HTTP status
//! and no ClickHouse exception; the exporter then follows the HTTP rule every HTTP
//! exporter shares. Driven through the `clickhouse` client against a scripted server.

mod common;

use std::sync::Arc;
use usage_conformance::{Answer, FaultServer};
use usage_core::{Batch, Event, ExportError, Exporter, RelayUsage, Resource};

async fn export_against(status: u16) -> ExportError {
    let server = FaultServer::start(Arc::new(|_| Vec::new()), Arc::new(move |_, _| Answer::status(status)))
        .await
        .expect("scripted server");
    let ch = common::exporter(&format!("http://{}", server.addr), "t_{kind}");
    let batch = Batch::from_events(
        vec![Event::new(RelayUsage {
            project: "acme".into(),
            cu: 1,
            ..Default::default()
        })],
        Arc::new(Resource::new("test")),
    );
    let err = ch.export(&batch).await.expect_err("no answer here is a success");
    assert!(!server.requests().is_empty(), "the exporter reached the server");
    err
}

#[tokio::test]
async fn bare_statuses_are_classified_as_every_http_exporter_does() {
    for (status, want) in [
        (401, "paused"),
        (403, "paused"),
        (413, "too large"),
        (404, "rejected"),
        (503, "retryable"),
        (429, "retryable"),
    ] {
        let err = export_against(status).await;
        let got = match &err {
            ExportError::Paused { .. } => "paused",
            ExportError::TooLarge { .. } => "too large",
            ExportError::Rejected { .. } => "rejected",
            ExportError::Retryable { .. } => "retryable",
            _ => "other",
        };
        assert_eq!(got, want, "{status}: {err}");
        assert!(err.to_string().contains(&status.to_string()), "{err}");
    }
}
