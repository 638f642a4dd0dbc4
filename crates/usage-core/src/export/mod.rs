//! What exporters are given and what they answer: the [`Exporter`](exporter::Exporter)
//! trait and its errors, the [`Batch`](batch::Batch) they receive (zero-copy views over
//! the router's chunks), the registry that builds them from config, and the one rule
//! every HTTP exporter uses to turn an answer into a retry, a pause or a refusal.
//! Nothing here depends on the pipeline.

pub(crate) mod batch;
pub(crate) mod exporter;
pub mod http;
pub mod registry;
