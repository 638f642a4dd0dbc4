//! `[spool]` configuration.

use crate::config::units;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// When appended events are fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncMode {
    /// After every group commit, before any exporter sees the events.
    Batch,
    /// At most this long after an append.
    Interval(Duration),
    /// Never explicitly (the OS writes back on its own schedule).
    Never,
}

impl<'de> Deserialize<'de> for FsyncMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "batch" => Ok(FsyncMode::Batch),
            "never" => Ok(FsyncMode::Never),
            _ => match s.strip_prefix("interval:") {
                Some(rest) => units::parse_duration(rest)
                    .map(FsyncMode::Interval)
                    .map_err(serde::de::Error::custom),
                None => Err(serde::de::Error::custom(format!(
                    "invalid fsync mode {s:?}: expected \"batch\", \"interval:100ms\" or \"never\""
                ))),
            },
        }
    }
}

/// `[spool]`: the optional write-ahead log.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Directory of the spool.
    pub path: PathBuf,
    /// Bound on segment bytes on disk; when reached, the pipeline's full policy applies.
    #[serde(default = "default_max_bytes", deserialize_with = "units::bytes")]
    pub max_bytes: usize,
    /// `"batch"` (default), `"interval:100ms"` or `"never"`.
    #[serde(default = "default_fsync")]
    pub fsync: FsyncMode,
    /// Segment file size before rolling to a new one.
    #[serde(default = "default_segment_bytes", deserialize_with = "units::bytes")]
    pub segment_bytes: usize,
}

fn default_max_bytes() -> usize {
    1 << 30
}
fn default_fsync() -> FsyncMode {
    FsyncMode::Batch
}
fn default_segment_bytes() -> usize {
    64 << 20
}

impl SpoolConfig {
    /// A spool at `path` with the defaults (1 GiB, fsync per batch, 64 MiB segments).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SpoolConfig {
            path: path.into(),
            max_bytes: default_max_bytes(),
            fsync: default_fsync(),
            segment_bytes: default_segment_bytes(),
        }
    }
}
