//! The `[exporters.<name>] type = "file"` keys.

use crate::layout::Compression;
use serde::Deserialize;
use std::path::PathBuf;

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
