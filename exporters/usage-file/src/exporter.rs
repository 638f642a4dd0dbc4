//! The `file` exporter: one crash-safe part per (kind, event hour) per batch.

use crate::config::FileConfig;
use crate::encode::encode_parts;
use crate::layout::{part_file_name, Compression};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use usage_core::{
    async_trait, Batch, ConfigError, ExportError, Exporter, ExporterContext, ExporterDefaults, ExporterFactory,
};

/// Writes batches under a root directory in the shared partition layout.
///
/// Each batch becomes one part per (kind, event hour), named after the batch id,
/// so a retried batch overwrites its own parts instead of duplicating them. A part
/// is written to a hidden temp name, fsynced, then renamed: a crash never leaves a
/// partial file that looks complete. The batch is acknowledged only after every
/// part is durable.
#[derive(Debug, Clone)]
pub struct FileExporter {
    root: PathBuf,
    compression: Compression,
    level: i32,
    /// Whether temp parts a killed process left have been removed (once, on the
    /// first write).
    swept: Arc<AtomicBool>,
}

impl FileExporter {
    /// An exporter writing under `root`.
    pub fn new(root: impl Into<PathBuf>, compression: Compression) -> Self {
        let level = match compression {
            Compression::Gzip => 6,
            _ => 3,
        };
        FileExporter {
            root: root.into(),
            compression,
            level,
            swept: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Sets the compression level.
    pub fn with_level(mut self, level: i32) -> Self {
        self.level = level;
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn write(&self, batch: &Batch) -> std::io::Result<()> {
        if !self.swept.swap(true, Relaxed) {
            remove_stale_temp_parts(&self.root, 0);
        }
        let id = batch.id().to_string();
        for part in encode_parts(batch, self.compression, self.level)? {
            let dir = self.root.join(part.partition.to_string());
            std::fs::create_dir_all(&dir)?;
            usage_core::fs::write_atomic(&dir.join(part_file_name(&id, self.compression)), &part.bytes)?;
        }
        Ok(())
    }
}

#[async_trait]
impl Exporter for FileExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let (me, batch) = (self.clone(), batch.clone());
        tokio::task::spawn_blocking(move || me.write(&batch).map_err(|e| (me.root, e)))
            .await
            .map_err(|e| ExportError::retryable(format!("file export task failed: {e}")))?
            // Local I/O errors (disk full, permissions) are for the operator to fix: keep retrying.
            .map_err(|(root, e)| ExportError::retryable(format!("writing parts under {}: {e}", root.display())))
    }

    async fn healthcheck(&self) -> Result<(), ExportError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&root)?;
            let probe = root.join(".usage-healthcheck");
            std::fs::write(&probe, b"ok")?;
            std::fs::remove_file(&probe)
        })
        .await
        .map_err(|e| ExportError::retryable(e.to_string()))?
        .map_err(|e| ExportError::retryable(format!("{} is not writable: {e}", self.root.display())))
    }
}

/// Removes hidden temp parts (`.part-*.tmp`) a kill between write and rename left
/// under `dir`. A retried batch can be cut differently after a restart, so its old
/// temp name would never be reused. Partitions nest five deep (kind, year, month,
/// day, hour).
fn remove_stale_temp_parts(dir: &Path, depth: usize) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if depth < 6 {
                remove_stale_temp_parts(&path, depth + 1);
            }
        } else if name.starts_with(".part-") && name.ends_with(".tmp") {
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!(file = %path.display(), "removed a temp part an interrupted write left"),
                Err(e) => tracing::warn!(file = %path.display(), "cannot remove a stale temp part: {e}"),
            }
        }
    }
}

fn build(ctx: &ExporterContext) -> Result<Box<dyn Exporter>, ConfigError> {
    let cfg: FileConfig = ctx.section.parse()?;
    let mut exporter = FileExporter::new(cfg.path.unwrap_or_else(|| ctx.data_dir.clone()), cfg.compression);
    if let Some(level) = cfg.level {
        let range = match cfg.compression {
            Compression::Zstd => 1..=22,
            Compression::Gzip => 0..=9,
            Compression::None => 0..=0,
        };
        if !range.contains(&level) {
            return Err(ConfigError::key(
                format!("exporters.{}.level", ctx.section.name),
                format!(
                    "{level} is out of range {}..={} for {:?}",
                    range.start(),
                    range.end(),
                    cfg.compression
                ),
            ));
        }
        exporter = exporter.with_level(level);
    }
    Ok(Box::new(exporter))
}

/// The `file` exporter type. Parts hold up to 100,000 events / 16 MiB and wait at
/// most 5 s, unless the instance overrides the batch settings.
pub static FACTORY: ExporterFactory = ExporterFactory {
    type_name: "file",
    description: "NDJSON parts (zstd/gzip) under a directory, partitioned by event time",
    build,
    defaults: ExporterDefaults {
        batch_max_events: Some(100_000),
        batch_max_bytes: Some(16 << 20),
        flush_interval: Some(Duration::from_secs(5)),
        batches_in_flight: None,
    },
    enabled_by_default: usage_core::registry::always_enabled,
    check: usage_core::registry::parses_as::<crate::config::FileConfig>,
};
