//! Reading the partition layout back (for `usage report`, tests and tools).

use crate::encode::decompress;
use crate::layout::{Compression, Partition};
use std::path::{Path, PathBuf};
use std::time::Duration;
use usage_core::json::Decoder;
use usage_core::{Event, Timestamp};

/// A part file found under a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartFile {
    /// Full path.
    pub path: PathBuf,
    /// Its partition.
    pub partition: Partition,
    /// Its compression.
    pub compression: Compression,
}

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only events at or after this time.
    pub from: Option<Timestamp>,
    /// Only events before this time.
    pub to: Option<Timestamp>,
}

impl Filter {
    fn wants_partition(&self, p: &Partition) -> bool {
        let Some(start) = p.start() else { return false };
        let end = start.plus(Duration::from_secs(3600));
        self.kind.as_deref().is_none_or(|k| k == p.kind)
            && self.from.is_none_or(|f| end > f)
            && self.to.is_none_or(|t| start < t)
    }

    fn wants(&self, e: &Event) -> bool {
        self.from.is_none_or(|f| e.ts() >= f) && self.to.is_none_or(|t| e.ts() < t)
    }
}

/// A part that could not be read; names the file (and line).
#[derive(Debug, thiserror::Error)]
#[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ReadError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, when one line is bad.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

fn is_kind_dir(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

fn sorted_dirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    out.sort();
    out
}

/// Every complete part under `root` matching the filter's kind and time range,
/// in partition order. Temp files of writes in progress are skipped.
pub fn list_parts(root: &Path, filter: &Filter) -> Vec<PartFile> {
    let mut parts = Vec::new();
    for (kind, kdir) in sorted_dirs(root).into_iter().filter(|(k, _)| is_kind_dir(k)) {
        for (y, ydir) in sorted_dirs(&kdir) {
            for (m, mdir) in sorted_dirs(&ydir) {
                for (d, ddir) in sorted_dirs(&mdir) {
                    for (h, hdir) in sorted_dirs(&ddir) {
                        let Some(partition) = Partition::parse(&kind, [&y, &m, &d, &h]) else {
                            continue;
                        };
                        if !filter.wants_partition(&partition) {
                            continue;
                        }
                        let mut files: Vec<PartFile> = std::fs::read_dir(&hdir)
                            .into_iter()
                            .flatten()
                            .flatten()
                            .filter_map(|f| {
                                let name = f.file_name().to_string_lossy().into_owned();
                                Compression::of_file_name(&name).map(|compression| PartFile {
                                    path: f.path(),
                                    partition: partition.clone(),
                                    compression,
                                })
                            })
                            .collect();
                        files.sort_by(|a, b| a.path.cmp(&b.path));
                        parts.extend(files);
                    }
                }
            }
        }
    }
    parts
}

/// Decodes one part's events (kinds unknown to this binary are accepted).
pub fn read_part(part: &PartFile) -> Result<Vec<Event>, ReadError> {
    let err = |line, message: String| ReadError {
        path: part.path.clone(),
        line,
        message,
    };
    let bytes = std::fs::read(&part.path).map_err(|e| err(None, e.to_string()))?;
    let raw = decompress(&bytes, part.compression).map_err(|e| err(None, format!("cannot decompress: {e}")))?;
    let decoder = Decoder::default().allow_unknown_kinds(true);
    raw.split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, line)| decoder.decode(line).map_err(|e| err(Some(i + 1), e.to_string())))
        .collect()
}

/// Calls `f` for every event under `root` that matches the filter.
/// Returns how many parts were read.
pub fn scan(root: &Path, filter: &Filter, mut f: impl FnMut(Event)) -> Result<usize, ReadError> {
    let parts = list_parts(root, filter);
    for part in &parts {
        for e in read_part(part)? {
            if filter.kind.as_deref().is_none_or(|k| k == e.kind()) && filter.wants(&e) {
                f(e);
            }
        }
    }
    Ok(parts.len())
}
