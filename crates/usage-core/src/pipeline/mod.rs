//! The pipeline: ingest queue -> router -> one queue and worker per exporter.
//!
//! ```text
//! emit ──► ingest queue ──► router ──► [queue ► worker ► exporter A]
//!  (lock-free, bounded)      (per kind)  [queue ► worker ► exporter B]
//! ```
//!
//! Each worker owns its batching, retries, pause and dead-letter handling, so a
//! hung or failing exporter only ever fills its own queue.
//!
//! In the order an event meets them: [`builder`] makes a pipeline and [`handle`] is
//! what users hold; `sink` is the `UsageSink` that emits and `ingest` the queue it
//! pushes to; `router` numbers events, commits them to the spool and fans them out by
//! kind (into the chunks batches view, `crate::export::batch`), and `router_thread`
//! is the thread that runs it; `queue` is each exporter's queue; `worker` each
//! exporter's task with `backoff` and `deadletter`; `shared` what all of them share,
//! `progress` what flush and shutdown wait on, `stats` and `report` what they count
//! and answer.

pub(crate) mod backoff;
mod builder;
pub(crate) mod deadletter;
mod drain;
mod handle;
pub(crate) mod histogram;
mod huge_pages;
pub(crate) mod ingest;
mod pause;
mod progress;
pub(crate) mod queue;
pub(crate) mod report;
pub(crate) mod ring;
pub(crate) mod router;
mod router_thread;
mod shared;
pub(crate) mod sink;
mod spool_reader;
pub(crate) mod stats;
pub(crate) mod worker;

pub use builder::PipelineBuilder;
pub use handle::Pipeline;
pub use report::AcceptError;

#[cfg(test)]
#[path = "settings_tests.rs"]
mod settings_tests;
#[cfg(test)]
#[path = "start_cursor_tests.rs"]
mod start_cursor_tests;
#[cfg(test)]
#[path = "stats_tests.rs"]
mod stats_tests;
