//! The registry of exporter types: each exporter crate registers a factory under a
//! type name, and pipelines built from config look factories up by `type`.
//!
//! # The linker pitfall
//!
//! A static library whose symbols nothing references is not linked into the
//! binary, and its `inventory` registrations vanish with it. So every exporter
//! crate also exposes `exporter_factory()`, and hosts name the crates they link
//! once with [`link_exporters!`](crate::link_exporters), which registers them
//! explicitly at run time:
//!
//! ```ignore
//! usage_core::link_exporters!(usage_file, usage_kafka);
//! ```
//!
//! If a config names a type that is not registered, building the pipeline fails
//! with an error that lists the registered types and says how to link the crate.

use crate::config::{ConfigError, ExporterSection};
use crate::event::resource::Resource;
use crate::export::exporter::Exporter;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The most batches one exporter instance exports at once (`batches_in_flight`); a
/// type that allows concurrent exports must take this many.
pub const MAX_BATCHES_IN_FLIGHT: usize = 16;

/// Batching defaults an exporter type prefers over the pipeline's (e.g. large,
/// slow-rolling parts for object stores). Users' per-instance options still win.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExporterDefaults {
    /// Events per batch.
    pub batch_max_events: Option<usize>,
    /// Bytes per batch.
    pub batch_max_bytes: Option<usize>,
    /// Longest an event waits for its batch.
    pub flush_interval: Option<Duration>,
    /// Batches an instance exports at once by default. `None`: the type exports
    /// one batch at a time and refuses the `batches_in_flight` key; `Some(n)`: its
    /// `export` may be called concurrently, `n` at a time unless the user says
    /// otherwise.
    pub batches_in_flight: Option<usize>,
}

impl ExporterDefaults {
    /// No preferences: use the pipeline's settings.
    pub const NONE: ExporterDefaults = ExporterDefaults {
        batch_max_events: None,
        batch_max_bytes: None,
        flush_interval: None,
        batches_in_flight: None,
    };
}

/// What a factory gets to build one exporter instance.
#[derive(Debug, Clone)]
pub struct ExporterContext {
    /// The instance's config section (use [`ExporterSection::parse`] for its keys).
    pub section: ExporterSection,
    /// The pipeline's data directory (for exporters that write local files).
    pub data_dir: PathBuf,
    /// The pipeline's resource attributes.
    pub resource: Arc<Resource>,
}

/// Builds exporters of one type from config.
#[derive(Debug)]
pub struct ExporterFactory {
    /// The `type` value in config, e.g. `kafka`.
    pub type_name: &'static str,
    /// One line for `usage check`.
    pub description: &'static str,
    /// Validates the section and builds the exporter. Must not block or do network
    /// I/O (connect lazily on the first export).
    pub build: fn(&ExporterContext) -> Result<Box<dyn Exporter>, ConfigError>,
    /// Batching defaults for this type.
    pub defaults: ExporterDefaults,
    /// Whether an instance with no `enabled` key is on (e.g. only when it has a key).
    pub enabled_by_default: fn(&ExporterSection) -> bool,
    /// Checks the section's keys without building anything, for instances that are
    /// switched off: a misspelt key is an error even there. Usually
    /// [`parses_as::<YourConfig>`](parses_as).
    pub check: fn(&ExporterSection) -> Result<(), ConfigError>,
}

/// For [`ExporterFactory::enabled_by_default`]: always on.
pub fn always_enabled(_: &ExporterSection) -> bool {
    true
}

/// For [`ExporterFactory::check`] of a type with no keys of its own to check.
pub fn accepts_any(_: &ExporterSection) -> Result<(), ConfigError> {
    Ok(())
}

/// For [`ExporterFactory::check`]: the section's keys deserialize into `T`.
pub fn parses_as<T: serde::de::DeserializeOwned>(section: &ExporterSection) -> Result<(), ConfigError> {
    section.parse::<T>().map(|_| ())
}

#[doc(hidden)]
pub struct ExporterRegistration(pub &'static ExporterFactory);

inventory::collect!(ExporterRegistration);

static LINKED: Mutex<Vec<&'static ExporterFactory>> = Mutex::new(Vec::new());

/// Registers factories explicitly (what [`link_exporters!`](crate::link_exporters) calls).
pub fn link(factories: &[&'static ExporterFactory]) {
    let mut linked = LINKED.lock().unwrap_or_else(|p| p.into_inner());
    for f in factories {
        if !linked.iter().any(|l| l.type_name == f.type_name) {
            linked.push(f);
        }
    }
}

/// Every registered exporter type, sorted by name.
pub fn registered_exporters() -> Vec<&'static ExporterFactory> {
    let mut all: Vec<&'static ExporterFactory> = inventory::iter::<ExporterRegistration>
        .into_iter()
        .map(|r| r.0)
        .collect();
    all.extend(LINKED.lock().unwrap_or_else(|p| p.into_inner()).iter().copied());
    all.sort_by_key(|f| f.type_name);
    all.dedup_by_key(|f| f.type_name);
    all
}

/// The factory for a type name.
pub fn exporter_factory(type_name: &str) -> Option<&'static ExporterFactory> {
    registered_exporters().into_iter().find(|f| f.type_name == type_name)
}

/// The error for a `type` nothing registered: lists what is registered and how to link.
pub(crate) fn unknown_type_error(section: &ExporterSection) -> ConfigError {
    let registered: Vec<&str> = registered_exporters().iter().map(|f| f.type_name).collect();
    if let Some(meant) = crate::config::suggest::did_you_mean(&section.type_name, registered.iter().copied()) {
        // A typo, most likely: the linking advice below would mislead.
        return ConfigError::key(
            format!("exporters.{}.type", section.name),
            format!(
                "unknown exporter type `{}`; registered types: {}; did you mean `{meant}`?",
                section.type_name,
                registered.join(", ")
            ),
        );
    }
    ConfigError::key(
        format!("exporters.{}.type", section.name),
        format!(
            "unknown exporter type `{}`; registered types: {}. If the crate providing it \
             (usually `usage-{}`) is a dependency, link it once with \
             `usage_core::link_exporters!(usage_{});` (see docs/exporters.md)",
            section.type_name,
            if registered.is_empty() {
                "none".to_string()
            } else {
                registered.join(", ")
            },
            section.type_name,
            section.type_name.replace('-', "_"),
        ),
    )
}

/// Registers an exporter factory (a `static ExporterFactory`) and defines
/// `pub fn exporter_factory()` in the calling crate, which
/// [`link_exporters!`](crate::link_exporters) uses. Invoke once at the crate root.
///
/// ```ignore
/// pub static FACTORY: usage_core::ExporterFactory = usage_core::ExporterFactory {
///     type_name: "stdout",
///     description: "prints events as JSON lines",
///     build: |_ctx| Ok(Box::new(Stdout)),
///     defaults: usage_core::ExporterDefaults::NONE,
///     enabled_by_default: usage_core::registry::always_enabled,
///     check: usage_core::registry::parses_as::<StdoutConfig>,
/// };
/// usage_core::register_exporter!(FACTORY);
/// ```
#[macro_export]
macro_rules! register_exporter {
    ($factory:path) => {
        $crate::__private::inventory::submit! {
            $crate::__private::ExporterRegistration(&$factory)
        }

        /// This crate's exporter factory; pass the crate to `usage_core::link_exporters!`.
        #[inline(never)]
        pub fn exporter_factory() -> &'static $crate::ExporterFactory {
            &$factory
        }
    };
}

/// Links exporter crates into the binary and registers them, whatever the linker
/// would otherwise drop. Call once before building a pipeline from config.
///
/// ```ignore
/// usage_core::link_exporters!(usage_file, usage_kafka, usage_s3);
/// let pipeline = usage_core::Pipeline::from_config(&usage_core::UsageConfig::load()?)?;
/// ```
#[macro_export]
macro_rules! link_exporters {
    ($($krate:ident),* $(,)?) => {
        $crate::registry::link(&[$($krate::exporter_factory()),*])
    };
}
