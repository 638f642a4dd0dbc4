//! The `Exporter` trait every destination implements, and how it reports failure.

use super::batch::Batch;
use async_trait::async_trait;
use std::time::Duration;

/// A destination for batches of events (Kafka, S3, ClickHouse, OTLP, HTTP, files).
///
/// The pipeline owns batching, retries with backoff, pausing, splitting and the
/// dead-letter file; an exporter only encodes and sends one batch and says how it
/// went. `export` must be cancel-safe (the pipeline drops the future on timeout or
/// at the shutdown deadline) and must not block the thread: run blocking work in
/// `tokio::task::spawn_blocking`.
///
/// ```
/// use usage_core::{async_trait, Batch, ExportError, Exporter};
///
/// struct Stdout;
///
/// #[async_trait]
/// impl Exporter for Stdout {
///     async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
///         for event in batch.iter() {
///             println!("{}", usage_core::json::to_string(event, batch.resource()));
///         }
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait Exporter: Send + Sync + 'static {
    /// Delivers the whole batch. `Ok` means every event is durably accepted by the
    /// destination. A retried batch has the same [`Batch::id`] and events.
    async fn export(&self, batch: &Batch) -> Result<(), ExportError>;

    /// Checks the destination is reachable and the credentials work.
    async fn healthcheck(&self) -> Result<(), ExportError> {
        Ok(())
    }

    /// Called periodically while the exporter is paused (after [`ExportError::Paused`]);
    /// `Ok` resumes sending. Defaults to [`healthcheck`](Exporter::healthcheck).
    async fn probe(&self) -> Result<(), ExportError> {
        self.healthcheck().await
    }

    /// Flushes and releases resources at shutdown, after the last batch.
    async fn close(&self) -> Result<(), ExportError> {
        Ok(())
    }
}

/// How an export failed, which decides what the pipeline does next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// Transient (network, 5xx, broker down, timeout): retry the same batch after
    /// backoff, waiting at least `retry_after` when the destination asked for it.
    #[error("{message}")]
    Retryable {
        /// What went wrong.
        message: String,
        /// Minimum wait the destination asked for (e.g. HTTP `Retry-After`).
        retry_after: Option<Duration>,
    },
    /// Credentials refused (401/403): stop sending, keep the data, probe later.
    #[error("paused: {message}")]
    Paused {
        /// What went wrong.
        message: String,
    },
    /// The batch is too large for the destination: split it in halves and retry.
    #[error("too large: {message}")]
    TooLarge {
        /// What went wrong.
        message: String,
    },
    /// The destination refused the batch permanently: write it to the dead-letter
    /// file and count it.
    #[error("rejected: {message}")]
    Rejected {
        /// The destination's reason (e.g. the response body).
        message: String,
    },
    /// Some events were refused permanently (indices into the batch, in
    /// [`Batch::iter`] order); all the others were delivered.
    #[error("rejected {} event(s): {message}", indices.len())]
    PartiallyRejected {
        /// Positions of the refused events.
        indices: Vec<usize>,
        /// The destination's reason.
        message: String,
    },
}

impl ExportError {
    /// A transient failure.
    pub fn retryable(message: impl Into<String>) -> Self {
        ExportError::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }

    /// A transient failure with a minimum wait before the next attempt.
    pub fn retry_after(message: impl Into<String>, after: Duration) -> Self {
        ExportError::Retryable {
            message: message.into(),
            retry_after: Some(after),
        }
    }

    /// Credentials refused.
    pub fn paused(message: impl Into<String>) -> Self {
        ExportError::Paused {
            message: message.into(),
        }
    }

    /// Batch too large.
    pub fn too_large(message: impl Into<String>) -> Self {
        ExportError::TooLarge {
            message: message.into(),
        }
    }

    /// Permanent refusal of the whole batch.
    pub fn rejected(message: impl Into<String>) -> Self {
        ExportError::Rejected {
            message: message.into(),
        }
    }

    /// Permanent refusal of some events; the rest were delivered.
    pub fn rejected_events(indices: Vec<usize>, message: impl Into<String>) -> Self {
        ExportError::PartiallyRejected {
            indices,
            message: message.into(),
        }
    }
}
