//! `UsageSink`: the handle applications emit through.

use super::ingest::Ingest;
use crate::event::Event;
use std::fmt;
use std::sync::Arc;

/// Where applications emit usage events. Cheap to clone, `Send + Sync`.
///
/// `emit` never blocks (unless `full_policy = "block_with_timeout"` was chosen),
/// never panics, never waits on I/O, and works from any thread with or without a
/// tokio runtime. When the queue is full the event is dropped and counted in
/// [`PipelineStats::dropped`](crate::PipelineStats).
///
/// ```
/// use usage_core::{RelayUsage, UsageSink};
/// // A disabled sink: emit costs a branch. `emit_with` does not even build the event.
/// let sink = UsageSink::noop();
/// sink.emit_with(|| RelayUsage { cu: 1, ..Default::default() });
/// assert!(!sink.is_enabled());
/// ```
#[derive(Clone, Default)]
pub struct UsageSink {
    ingest: Option<Arc<Ingest>>,
}

impl UsageSink {
    /// A sink that discards everything (usage off).
    pub const fn noop() -> Self {
        UsageSink { ingest: None }
    }

    pub(crate) fn from_ingest(ingest: Arc<Ingest>) -> Self {
        UsageSink { ingest: Some(ingest) }
    }

    /// Whether events go anywhere.
    #[inline]
    pub fn is_enabled(&self) -> bool {
        self.ingest.is_some()
    }

    /// Enqueues an event (stamped now with a fresh id if built from a kind).
    #[inline(always)]
    pub fn emit<E: Into<Event>>(&self, event: E) {
        if let Some(ingest) = &self.ingest {
            ingest.push(event.into());
        }
    }

    /// Builds and enqueues the event only when the sink is enabled.
    #[inline(always)]
    pub fn emit_with<E: Into<Event>>(&self, build: impl FnOnce() -> E) {
        if let Some(ingest) = &self.ingest {
            ingest.push(build().into());
        }
    }
}

impl fmt::Debug for UsageSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageSink")
            .field("enabled", &self.is_enabled())
            .finish()
    }
}
