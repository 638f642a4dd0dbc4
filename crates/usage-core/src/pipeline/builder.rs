//! Building a pipeline: exporters from config or code, the spool, the runtime,
//! each exporter's start cursor.

use super::handle::{Pipeline, RuntimeGuard};
use super::ingest::Ingest;
use super::progress::{Control, Progress};
use super::queue::ExporterSlot;
use super::router::Router;
use super::router_thread::run_router;
use super::shared::Inner;
use super::stats::PipelineStats;
use super::worker::{Worker, WorkerSettings};
use crate::config::{ConfigError, ExporterOptions, ExporterSection, PipelineConfig, UsageConfig};
use crate::event::kind::{kind_schema, registered_kinds, validate_registered_kinds};
use crate::event::resource::Resource;
use crate::export::exporter::Exporter;
use crate::export::registry::{exporter_factory, unknown_type_error, ExporterContext, ExporterDefaults};
use crate::pipeline::sink::UsageSink;
use crate::spool::{cursor, Spool, SpoolConfig};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::watch;

pub(crate) struct ExporterSpec {
    pub(super) section: ExporterSection,
    pub(super) exporter: Arc<dyn Exporter>,
    pub(super) defaults: ExporterDefaults,
}

/// Builds a [`Pipeline`] in code or from [`UsageConfig`].
#[derive(Default)]
pub struct PipelineBuilder {
    pub(super) config: PipelineConfig,
    pub(super) spool: Option<SpoolConfig>,
    pub(super) exporters: Vec<ExporterSpec>,
    pub(super) handle: Option<Handle>,
    pub(super) disabled: bool,
}

impl PipelineBuilder {
    /// Resolves every configured exporter through the registry.
    pub fn from_config(config: &UsageConfig) -> Result<Self, ConfigError> {
        let mut b = PipelineBuilder {
            config: config.pipeline.clone(),
            spool: config.spool.clone(),
            disabled: !config.pipeline.enabled,
            ..Default::default()
        };
        if b.disabled {
            return Ok(b);
        }
        let resource = Arc::new(b.resource());
        let mut sections = config.exporters.clone();
        if sections.is_empty() {
            sections.push(ExporterSection::new("file", "file"));
        }
        for section in sections {
            let factory = match exporter_factory(&section.type_name) {
                Some(f) => f,
                None if config.exporters.is_empty() => {
                    return Err(ConfigError::msg(
                        "no [exporters] are configured and the default `file` exporter is not linked: \
                         add the usage-file crate and `usage_core::link_exporters!(usage_file);`",
                    ))
                }
                None => return Err(unknown_type_error(&section)),
            };
            if section.options.enabled == Some(false) {
                // Switched off, yet checked: a misspelt key is found now, not the
                // day it is switched on.
                (factory.check)(&section)?;
                continue;
            }
            if section.options.enabled.is_none() && !(factory.enabled_by_default)(&section) {
                (factory.check)(&section)?;
                // Configured yet not running is a surprise: said at the default log level.
                tracing::warn!(exporter = %section.name, type_name = %section.type_name, "exporter off: a key it needs is missing (see its docs; `usage check` shows it); set enabled = true to force it");
                continue;
            }
            let ctx = ExporterContext {
                section: section.clone(),
                data_dir: b.config.data_dir.clone(),
                resource: resource.clone(),
            };
            let exporter = (factory.build)(&ctx)?;
            b.exporters.push(ExporterSpec {
                section,
                exporter: Arc::from(exporter),
                defaults: factory.defaults,
            });
        }
        Ok(b)
    }

    /// Replaces the pipeline settings.
    pub fn config(mut self, config: PipelineConfig) -> Self {
        self.config = config;
        self
    }

    /// Adjusts the pipeline settings in place.
    pub fn configure(mut self, f: impl FnOnce(&mut PipelineConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// Adds an exporter instance that receives every kind, with pipeline defaults.
    pub fn exporter(self, name: impl Into<String>, exporter: impl Exporter) -> Self {
        let name = name.into();
        self.exporter_with(ExporterSection::new(name, "custom"), exporter)
    }

    /// Adds an exporter instance with options (kinds, batching overrides).
    pub fn exporter_with(self, section: ExporterSection, exporter: impl Exporter) -> Self {
        self.exporter_with_defaults(section, exporter, ExporterDefaults::NONE)
    }

    /// Adds an exporter instance with the batching defaults its type prefers, e.g.
    /// `batches_in_flight` for an exporter that calls [`Batch::handed_off`](crate::Batch::handed_off).
    pub fn exporter_with_defaults(
        mut self,
        section: ExporterSection,
        exporter: impl Exporter,
        defaults: ExporterDefaults,
    ) -> Self {
        self.exporters.push(ExporterSpec {
            section,
            exporter: Arc::new(exporter),
            defaults,
        });
        self
    }

    /// Adds an exporter instance with the given common options.
    pub fn exporter_options(self, name: impl Into<String>, options: ExporterOptions, exporter: impl Exporter) -> Self {
        let mut section = ExporterSection::new(name, "custom");
        section.options = options;
        self.exporter_with(section, exporter)
    }

    /// Puts a crash-safe spool between the router and the exporters.
    pub fn spool(mut self, spool: SpoolConfig) -> Self {
        self.spool = Some(spool);
        self
    }

    /// Runs the exporter workers on the host's runtime instead of an owned one
    /// (the router always has its own thread).
    pub fn runtime(mut self, handle: Handle) -> Self {
        self.handle = Some(handle);
        self
    }

    pub(super) fn resource(&self) -> Resource {
        crate::event::resource::from_config_and_env(
            &self.config.service_name,
            self.config.service_instance_id.as_deref(),
            |k| std::env::var(k).ok(),
        )
    }

    /// Validates everything and starts the pipeline.
    pub fn build(self) -> Result<Pipeline, ConfigError> {
        self.config.validate()?;
        validate_registered_kinds().map_err(ConfigError::msg)?;
        if self.disabled {
            return Ok(Pipeline::disabled());
        }
        if self.exporters.is_empty() {
            return Err(ConfigError::msg("the pipeline has no exporters"));
        }
        // Every instance's own settings, before anything is opened or started.
        for spec in &self.exporters {
            WorkerSettings::resolve(&spec.section, &spec.defaults, &self.config)?;
        }
        let mut names: Vec<&str> = Vec::new();
        for spec in &self.exporters {
            let name = spec.section.name.as_str();
            if names.contains(&name) {
                return Err(ConfigError::key(format!("exporters.{name}"), "is defined twice"));
            }
            names.push(name);
            for kind in spec.section.options.events.iter().flatten() {
                if kind_schema(kind).is_none() {
                    let known: Vec<String> = registered_kinds().iter().map(|s| s.kind.to_string()).collect();
                    return Err(ConfigError::key(
                        format!("exporters.{name}.events"),
                        format!("unknown event kind `{kind}`; known kinds: {}", known.join(", ")),
                    ));
                }
            }
        }
        // A build that fails after this point drops the runtime: without blocking, so a
        // caller inside async code (the gateway) gets the error, not a panic.
        let (mut runtime, handle) = match self.handle.clone() {
            Some(h) => (RuntimeGuard(None), h),
            None => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("usage-pipeline")
                    .enable_all()
                    .build()
                    .map_err(|e| ConfigError::msg(format!("cannot start the pipeline runtime: {e}")))?;
                let h = rt.handle().clone();
                (RuntimeGuard(Some(rt)), h)
            }
        };
        let c = &self.config;
        // Wake the router about every half batch of bytes (at least 64 KiB).
        let wake_bytes = (c.batch_max_bytes / 2).clamp(64 << 10, c.queue_max_bytes.max(1));
        let ingest = Ingest::new(
            c.queue_capacity,
            c.queue_max_bytes,
            wake_bytes,
            c.full_policy,
            c.block_timeout,
        );
        let ingest = Arc::new(if self.spool.is_some() { ingest.spooled() } else { ingest });
        let resource = Arc::new(self.resource());
        let mut spool_data_end = 0;
        let spool = match self.spool.clone() {
            Some(cfg) => {
                if cfg.max_bytes == 0 || cfg.segment_bytes < 4096 {
                    return Err(ConfigError::key(
                        "spool",
                        "max_bytes must be > 0 and segment_bytes at least 4KiB",
                    ));
                }
                let (spool, report) =
                    Spool::open(cfg, resource.clone()).map_err(|e| ConfigError::msg(e.to_string()))?;
                tracing::info!(
                    events = report.events,
                    segments = report.segments,
                    quarantined_bytes = report.quarantined_bytes,
                    missing_events = report.missing_events,
                    unreadable_events = report.unreadable_events,
                    damaged_events = report.damaged_events,
                    elapsed_ms = report.elapsed.as_millis() as u64,
                    "spool recovered"
                );
                spool_data_end = report.data_end;
                Some(spool)
            }
            None => None,
        };
        let spool_shared = spool.as_ref().map(|s| s.shared.clone());
        let spool_end = spool.as_ref().map_or(0, Spool::next_seq);
        let (abort, _) = watch::channel(false);
        let control = Arc::new(Control {
            stopping: AtomicBool::new(false),
            router_exit: AtomicBool::new(false),
            flush_gen: AtomicU64::new(0),
            abort,
            progress: Progress::new(),
            deadline: Mutex::new(None),
        });
        let mut slots = Vec::new();
        let mut workers = Vec::new();
        let mut exporters = Vec::new();
        for spec in self.exporters {
            exporters.push((spec.section.name.clone(), spec.exporter.clone()));
            let o = &spec.section.options;
            let settings = WorkerSettings::resolve(&spec.section, &spec.defaults, c)?;
            let max_events = o
                .queue_max_events
                .unwrap_or(c.queue_capacity)
                .max(settings.batch_max_events);
            let max_bytes = o
                .queue_max_bytes
                .unwrap_or_else(|| c.queue_max_bytes.max(settings.batch_max_bytes.saturating_mul(2)));
            let slot = Arc::new(ExporterSlot::new(
                spec.section.name.clone(),
                spec.section.type_name.clone(),
                o.events.clone(),
                max_events,
                max_bytes,
                spool_shared.is_some(),
            ));
            if let Some(shared) = &spool_shared {
                slot.start_at(start_cursor(shared, &slot.name, spool_end, spool_data_end), spool_end);
            }
            let spool = spool_shared.clone().map(|s| {
                super::spool_reader::SpoolReader::new(
                    s,
                    slot.clone(),
                    settings.batch_max_events,
                    settings.batch_max_bytes,
                )
            });
            workers.push(Worker {
                slot: slot.clone(),
                spool,
                exporter: spec.exporter,
                settings,
                dead_letter: super::deadletter::DeadLetter::new(&c.data_dir, &spec.section.name),
                resource: resource.clone(),
                control: control.clone(),
                pause: Default::default(),
            });
            slots.push(slot);
        }
        let router = Router::new(spool);
        let published = router.published.clone();
        let inner = Arc::new(Inner {
            ingest: ingest.clone(),
            slots,
            exporters,
            router: Mutex::new(router),
            published,
            spool: spool_shared,
            control,
            router_tick: router_tick(c, self.spool.as_ref()),
            flush_base: Mutex::new(PipelineStats::default()),
        });
        for w in workers {
            handle.spawn(w.run());
        }
        let router = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("usage-router".into())
                .spawn(move || run_router(inner))
                .map_err(|e| ConfigError::msg(format!("cannot start the router thread: {e}")))?
        };
        ingest.set_router(router.thread().clone());
        Ok(Pipeline {
            sink: UsageSink::from_ingest(ingest),
            inner,
            router: Mutex::new(Some(router)),
            handle: Some(handle),
            runtime: Mutex::new(runtime.0.take()),
            done: Mutex::new(None),
        })
    }
}

/// Router tick: short enough for the flush interval and the spool's fsync interval.
pub(super) fn router_tick(c: &PipelineConfig, spool: Option<&SpoolConfig>) -> Duration {
    let mut tick = (c.flush_interval / 4).clamp(Duration::from_millis(1), Duration::from_millis(100));
    if let Some(crate::spool::FsyncMode::Interval(d)) = spool.map(|s| s.fsync) {
        tick = tick.min((d / 2).max(Duration::from_millis(1)));
    }
    tick
}

/// Where a spooled exporter starts: its cursor, or the oldest retained event when
/// the cursor is missing or unreadable (at-least-once: nothing is skipped).
pub(super) fn start_cursor(spool: &crate::spool::Shared, exporter: &str, end: u64, data_end: u64) -> u64 {
    let oldest = spool.stats().oldest_seq.min(end);
    let path = cursor::path(&spool.dir, exporter);
    match cursor::load(&path) {
        // An exporter only acknowledges what was written: a cursor past the data is
        // damage (or the data went missing), and skipping to it would skip events.
        cursor::Loaded::Seq(s) if crate::spool::cursor_past_data(s, data_end, oldest) => {
            tracing::warn!(
                exporter,
                cursor = s,
                data_end,
                "spool cursor is PAST THE END of the spooled data; re-delivering from the oldest spooled event \
                 (duplicates keep their ids)"
            );
            oldest
        }
        cursor::Loaded::Seq(s) if s < oldest => {
            // Segments are deleted only once every exporter is past them: these are gone.
            tracing::warn!(
                exporter,
                cursor = s,
                oldest,
                missing_events = oldest - s,
                "spooled events this exporter had not delivered are MISSING (their segments were deleted or emptied)"
            );
            oldest
        }
        cursor::Loaded::Seq(s) => s,
        cursor::Loaded::Missing => {
            if end > oldest {
                tracing::info!(
                    exporter,
                    from = oldest,
                    to = end,
                    "no spool cursor: delivering every spooled event (at-least-once)"
                );
            }
            oldest
        }
        cursor::Loaded::Garbage(why) => {
            let q = spool
                .dir
                .join("quarantine")
                .join(format!("{exporter}.cursor.{}", crate::Timestamp::now().as_micros()));
            let moved = std::fs::rename(&path, &q).is_ok();
            spool.counters.quarantined_regions.fetch_add(1, Relaxed);
            tracing::error!(
                exporter, reason = %why, moved_to = %q.display(), moved,
                "spool cursor is DAMAGED; re-delivering from the oldest spooled event (duplicates keep their ids)"
            );
            oldest
        }
    }
}

/// The ways to make a pipeline, beside the builder.
impl Pipeline {
    /// A builder with default settings and no exporters.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// Builds from configuration, looking exporter types up in the registry. With
    /// no `[exporters]`, uses the `file` exporter under `pipeline.data_dir`.
    pub fn from_config(config: &UsageConfig) -> Result<Pipeline, ConfigError> {
        PipelineBuilder::from_config(config)?.build()
    }
}
