//! The `file` exporter: one crash-safe part per (kind, event hour) per batch.

use crate::encode::encode_parts;
use crate::layout::{part_file_name, Compression};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use usage_core::{
    async_trait, Batch, ConfigError, ExportError, Exporter, ExporterContext, ExporterDefaults, ExporterFactory,
};

/// `[exporters.<name>]` keys of type `file`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Root directory (default: `pipeline.data_dir`).
    pub path: Option<PathBuf>,
    /// `zstd` (default), `gzip` or `none`.
    #[serde(default)]
    pub compression: Compression,
    /// Compression level (zstd 1-22, default 3; gzip 0-9, default 6).
    pub level: Option<i32>,
}

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
    },
    enabled_by_default: usage_core::registry::always_enabled,
};
