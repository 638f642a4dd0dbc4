//! # usage-conformance
//!
//! One suite every exporter must pass against its real backend (as `object_store`
//! does for its stores). An exporter crate implements [`Backend`] for its destination
//! and calls [`run`] from an `#[ignore]`d test that `cargo xtask e2e` runs with the
//! backend's address in the environment; a backend that needs no server (the file
//! exporter's) calls each named check ([`check_delivery`], [`check_stop_and_restart`])
//! from its own plain test.
//!
//! The suite checks, through a real pipeline:
//! 1. **Delivery**: N events of several kinds go in; all N are found by id.
//! 2. **Routing**: the instance receives only the kinds it subscribes to.
//! 3. **Fidelity**: every field is exact, types included; count and SUM(cu) per
//!    project equal what was emitted.
//! 4. **Outage**: the backend is stopped and restarted mid-stream; nothing is lost
//!    (events wait and are delivered after it returns).

mod bench;
mod checks;
mod fault_server;
mod process;
mod proxy;
mod support;

pub use bench::{bench_relay, pump, varied_relay};
pub use checks::{check_delivery, check_stop_and_restart, run, Check, CHECKS};
pub use fault_server::{read_request, Answer, Decoder, FaultServer, Request, Script};
pub use process::{e2e_tool, free_port, Server};
pub use proxy::TcpProxy;
pub use support::{emit_relays, env_addr, poll_read, record, record_json, scratch_dir};

use usage_core::Event;

/// A real destination the suite can write to (through the exporter) and read back from.
pub trait Backend {
    /// Short name for the report, e.g. `tansu`, `moto`, `clickhouse 18.16`.
    fn name(&self) -> String;
    /// The exporter's type, e.g. `kafka`.
    fn exporter_type(&self) -> String;
    /// The TOML body of `[exporters.under_test]` (without `type` and `events`),
    /// pointing at this backend. `run` names the run so each run can use fresh
    /// topics, prefixes or tables.
    fn exporter_settings(&self, run: &str) -> String;
    /// Every event stored for `run`, decoded back into events (kind, id, time and
    /// typed values), duplicates included.
    fn read_back(&self, run: &str, expected: usize) -> Result<Vec<Event>, String>;
    /// Makes the backend unavailable (stop the process, close the port).
    fn stop(&mut self) -> Result<(), String>;
    /// Makes it available again.
    fn start(&mut self) -> Result<(), String>;
}

/// The outcome of one step, for the e2e table.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// Exporter type.
    pub exporter: String,
    /// Backend name.
    pub backend: String,
    /// Which check.
    pub step: String,
    /// Events sent to the exporter under test.
    pub sent: usize,
    /// Events read back (with duplicates).
    pub found: usize,
    /// Distinct ids read back.
    pub unique: usize,
    /// Extra copies of ids read back.
    pub duplicates: usize,
    /// Sent ids not found.
    pub lost: usize,
    /// Wall time of the step.
    pub seconds: f64,
}

impl StepReport {
    /// One JSON line (what `cargo xtask e2e` collects).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "exporter": self.exporter, "backend": self.backend, "step": self.step, "sent": self.sent,
            "found": self.found, "unique": self.unique, "duplicates": self.duplicates, "lost": self.lost,
            "seconds": self.seconds,
        })
        .to_string()
    }
}
