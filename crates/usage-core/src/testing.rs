//! An in-memory exporter for tests of code that emits usage: it keeps every event it
//! acknowledged, counts attempts, and answers from a script you give it (fail the
//! first two calls, refuse one event, pause until told otherwise).
//!
//! ```
//! use std::time::Duration;
//! use usage_core::testing::MemoryExporter;
//! use usage_core::{ExportError, Pipeline, RelayUsage};
//!
//! // Retryable failure on the first call, then success.
//! let memory = MemoryExporter::scripted(|_batch, call| {
//!     if call == 0 { Err(ExportError::retryable("warming up")) } else { Ok(()) }
//! });
//! let pipeline = Pipeline::builder()
//!     .configure(|c| c.retry_base = Duration::from_millis(1))
//!     .exporter("memory", memory.clone())
//!     .build()
//!     .unwrap();
//! pipeline.sink().emit(RelayUsage { cu: 7, ..Default::default() });
//! pipeline.shutdown_blocking(Duration::from_secs(5)).unwrap();
//! assert_eq!(memory.events()[0].field("cu"), Some(usage_core::Value::U64(7)));
//! assert_eq!(memory.calls(), 2);
//! ```

use crate::export::batch::Batch;
use crate::export::exporter::{ExportError, Exporter};
use crate::{Event, EventId};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// How a [`MemoryExporter`] answers call number `n` (from 0) with this batch.
type Script = dyn Fn(&Batch, usize) -> Result<(), ExportError> + Send + Sync;

/// Keeps what it acknowledges; clones share one record.
#[derive(Clone)]
pub struct MemoryExporter {
    delivered: Arc<Mutex<Vec<Event>>>,
    attempts: Arc<Mutex<Vec<(Instant, usize)>>>,
    batch_sizes: Arc<Mutex<Vec<usize>>>,
    calls: Arc<AtomicUsize>,
    probe_ok: Arc<AtomicBool>,
    probes: Arc<AtomicUsize>,
    script: Arc<Script>,
}

impl std::fmt::Debug for MemoryExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryExporter")
            .field("delivered", &lock(&self.delivered).len())
            .field("calls", &self.calls())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Default for MemoryExporter {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryExporter {
    /// Acknowledges every batch.
    pub fn new() -> Self {
        Self::scripted(|_, _| Ok(()))
    }

    /// Answers call number `n` (from 0) with `script(batch, n)`. On `Ok` the batch's
    /// events are kept; on [`ExportError::PartiallyRejected`] all but the refused ones.
    pub fn scripted(script: impl Fn(&Batch, usize) -> Result<(), ExportError> + Send + Sync + 'static) -> Self {
        MemoryExporter {
            delivered: Arc::default(),
            attempts: Arc::default(),
            batch_sizes: Arc::default(),
            calls: Arc::default(),
            probe_ok: Arc::new(AtomicBool::new(false)),
            probes: Arc::default(),
            script: Arc::new(script),
        }
    }

    /// Every event acknowledged so far, in delivery order (a retried batch's events
    /// appear once per acknowledgement).
    pub fn events(&self) -> Vec<Event> {
        lock(&self.delivered).clone()
    }

    /// Their ids.
    pub fn ids(&self) -> Vec<EventId> {
        lock(&self.delivered).iter().map(Event::id).collect()
    }

    /// How many events were acknowledged.
    pub fn count(&self) -> usize {
        lock(&self.delivered).len()
    }

    /// Calls to `export` so far, answered or not.
    pub fn calls(&self) -> usize {
        self.calls.load(SeqCst)
    }

    /// Every call's time and batch size.
    pub fn attempts(&self) -> Vec<(Instant, usize)> {
        lock(&self.attempts).clone()
    }

    /// Sizes of the batches acknowledged.
    pub fn batch_sizes(&self) -> Vec<usize> {
        lock(&self.batch_sizes).clone()
    }

    /// What a probe answers while the pipeline holds this exporter paused: `false`
    /// (the default) keeps it paused, `true` resumes it.
    pub fn set_probe_ok(&self, ok: bool) {
        self.probe_ok.store(ok, SeqCst);
    }

    /// Probes answered so far.
    pub fn probes(&self) -> usize {
        self.probes.load(SeqCst)
    }
}

#[async_trait::async_trait]
impl Exporter for MemoryExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let call = self.calls.fetch_add(1, SeqCst);
        lock(&self.attempts).push((Instant::now(), batch.len()));
        let answer = (self.script)(batch, call);
        match &answer {
            Ok(()) => {
                lock(&self.batch_sizes).push(batch.len());
                lock(&self.delivered).extend(batch.iter().cloned());
            }
            Err(ExportError::PartiallyRejected { indices, .. }) => {
                let kept = batch
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !indices.contains(i))
                    .map(|(_, e)| e.clone());
                lock(&self.delivered).extend(kept);
            }
            Err(_) => {}
        }
        answer
    }

    async fn probe(&self) -> Result<(), ExportError> {
        self.probes.fetch_add(1, SeqCst);
        if self.probe_ok.load(SeqCst) {
            Ok(())
        } else {
            Err(ExportError::paused("the test keeps this exporter paused"))
        }
    }
}

/// How many cases a fuzz property test runs: `USAGE_FUZZ_CASES` when set (as
/// `cargo xtask fuzz` sets it), else `default` (what plain `cargo test` runs).
pub fn fuzz_cases(default: u32) -> u32 {
    std::env::var("USAGE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A sample input damaged by the given edits: each `(position, byte)` overwrites a
/// byte (positions wrap), then the input is cut to `keep` bytes. For fuzz tests
/// that start from a valid input, so damage lands deep inside its structure.
pub fn damaged(sample: &[u8], edits: &[(usize, u8)], keep: usize) -> Vec<u8> {
    let mut out = sample.to_vec();
    if !out.is_empty() {
        let n = out.len();
        for &(at, b) in edits {
            out[at % n] = b;
        }
    }
    out.truncate(keep);
    out
}

/// Lava's string values (shared/interop.md), for benchmarks and load tests: 500
/// distinct 32-char project hashes, 64 provider addresses of 44 chars, origins of
/// 29-33 chars (a quarter empty; Lava's are up to 30, so these err long).
/// Deterministic: every run gets the same strings.
///
/// ```
/// let lava = usage_core::testing::LavaStrings::new();
/// let (project, provider, origin) = lava.pick(7);
/// assert_eq!((project.len(), provider.len()), (32, 44));
/// assert!(origin.is_empty() || (29..=33).contains(&origin.len()));
/// ```
#[derive(Debug, Clone)]
pub struct LavaStrings {
    /// 500 distinct 32-char hex project hashes.
    pub projects: Vec<String>,
    /// 64 provider addresses, `lava@1` and 38 more chars.
    pub providers: Vec<String>,
    /// 40 origins: a quarter empty, the rest `https://app-<hex>.example.io`.
    pub origins: Vec<String>,
}

impl LavaStrings {
    /// The strings (a few hundred allocations: make them once).
    pub fn new() -> Self {
        // xorshift64: deterministic pseudo-random hex.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut hex = |n: usize| {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from_digit((x % 16) as u32, 16).unwrap_or('0')
                })
                .collect::<String>()
        };
        LavaStrings {
            projects: (0..500).map(|_| hex(32)).collect(),
            providers: (0..64).map(|_| format!("lava@1{}", hex(38))).collect(),
            origins: (0..40)
                .map(|i| match i % 4 {
                    0 => String::new(),
                    _ => format!("https://app-{}.example.io", hex(6 + i % 5)),
                })
                .collect(),
        }
    }

    /// (project, provider, origin) of event `i`: projects cycle fastest, a provider
    /// serves 7 events in a row, an origin 3.
    #[inline]
    pub fn pick(&self, i: u64) -> (&str, &str, &str) {
        let i = i as usize;
        (
            &self.projects[i % self.projects.len()],
            &self.providers[(i / 7) % self.providers.len()],
            &self.origins[(i / 3) % self.origins.len()],
        )
    }
}

impl Default for LavaStrings {
    fn default() -> Self {
        Self::new()
    }
}

/// A batch holding `chunks` as the router hands them over: one slice per chunk,
/// even where neighbouring chunks are of the same kind (as a batch taken from an
/// exporter's queue is). For exporters' tests; `Batch::from_events` makes one slice
/// per run of a kind instead.
pub fn batch_of_chunks(chunks: Vec<Vec<Event>>, resource: Arc<crate::Resource>) -> Batch {
    use crate::export::batch::{Chunk, Slice};
    let slices = chunks
        .into_iter()
        .map(|events| Slice::whole(Arc::new(Chunk::new(events))))
        .collect();
    Batch::from_slices(slices, resource.clone()).unwrap_or_else(|| Batch::from_events(Vec::new(), resource))
}
