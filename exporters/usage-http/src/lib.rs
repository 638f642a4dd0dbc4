//! # usage-http
//!
//! Ships batches to a metrics API: `POST <url>` with `{"events":[...]}` (the JSON
//! encoding of `docs/encoding.md`), gzip-compressed, `Authorization: Bearer <key>` and
//! an `Idempotency-Key` per batch that stays the same across retries.
//!
//! | answer | what happens |
//! |---|---|
//! | 2xx | acknowledged |
//! | 5xx, timeout, reset | retried with exponential backoff and full jitter |
//! | 429 | retried no sooner than `Retry-After` (seconds or HTTP date), else backoff |
//! | 401, 403 | paused: nothing is sent, the data is kept, one error is logged; resumes when the key changes (env or file re-read) or a periodic probe succeeds |
//! | 413 | the batch is split and the halves retried |
//! | other 4xx | the batch is dead-lettered with the response body |
//!
//! ```toml
//! [exporters.metrics_api]
//! type = "http"
//! url = "https://api.example.com/v1/metrics"
//! key = { env = "METRICS_API_KEY" }    # enabled only when a key is configured
//! flush_interval = "1s"
//! batch_max_events = 1000
//! ```

mod config;
mod exporter;

pub use config::HttpConfig;
pub use exporter::{HttpExporter, FACTORY};

usage_core::register_exporter!(FACTORY);
