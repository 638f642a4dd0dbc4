//! Recovery: scanning segment files, quarantining damage, rebuilding metadata.

use super::segment::{self, RecordType};
use super::{codec, RecoveryReport, SegmentMeta, INDEX_EVERY};
use std::path::Path;
use std::sync::Arc;

/// Events absent between consecutive segments. Segments are only deleted from the
/// oldest end, once every exporter is past them, so a gap in the middle is loss.
pub(crate) fn gaps_between(metas: &[SegmentMeta]) -> u64 {
    metas
        .windows(2)
        .map(|pair| pair[1].base_seq.saturating_sub(pair[0].next_seq))
        .sum()
}

/// Whether a stored cursor cannot be an acknowledgement: it is past the end of the
/// spooled data (an exporter only acknowledges what was written) while data remains.
/// The pipeline re-delivers from the oldest event instead; `inspect` calls it damaged.
pub(crate) fn cursor_past_data(seq: u64, data_end: u64, oldest: u64) -> bool {
    seq > data_end && data_end > oldest
}

/// Scans one segment file; quarantines damage and rewrites the file with only its
/// intact records. `Ok(None)` when nothing usable remains (the file is removed).
pub(crate) fn recover_segment(
    dir: &Path,
    path: &Path,
    report: &mut RecoveryReport,
    dry_run: bool,
) -> std::io::Result<Option<SegmentMeta>> {
    let bytes = std::fs::read(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The name is the base seq: a damaged header is rebuilt from it.
    let named_base = name.strip_suffix(".seg").and_then(|n| n.parse::<u64>().ok());
    let s = segment::scan_with(&bytes, named_base);
    if !s.damaged.is_empty() {
        let mut damaged = Vec::new();
        for r in &s.damaged {
            damaged.extend_from_slice(&bytes[r.clone()]);
            report.quarantined_regions += 1;
        }
        report.quarantined_bytes += damaged.len() as u64;
        if dry_run {
            return match s.header {
                Some(_) => build_meta(path, &bytes, &s, report, None).map(Some),
                None => Ok(None),
            };
        }
        let q = dir
            .join("quarantine")
            .join(format!("{name}.{}.bin", crate::Timestamp::now().as_micros()));
        crate::fs::write_atomic(&q, &damaged)?;
        tracing::error!(
            segment = %path.display(), bytes = damaged.len(), regions = s.damaged.len(), quarantine = %q.display(),
            "damaged spool bytes quarantined{}", s.header_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        );
    }
    let Some(header) = s.header else {
        if !dry_run {
            std::fs::remove_file(path)?;
        }
        return Ok(None);
    };
    let clean = if s.damaged.is_empty() || dry_run {
        None
    } else {
        Some(header.encode().to_vec())
    };
    build_meta(path, &bytes, &s, report, clean).map(Some)
}

/// Builds a segment's metadata from a scan; with `clean`, also rebuilds the file
/// from its intact records only and writes it in place.
fn build_meta(
    path: &Path,
    bytes: &[u8],
    s: &segment::Scan,
    report: &mut RecoveryReport,
    mut clean: Option<Vec<u8>>,
) -> std::io::Result<SegmentMeta> {
    let Some(header) = s.header else {
        return Err(std::io::Error::other("segment without header"));
    };
    let mut meta = SegmentMeta {
        path: path.to_path_buf(),
        base_seq: header.base_seq,
        next_seq: header.base_seq,
        bytes: 0,
        schemas: Vec::new(),
        resource: None,
        index: Vec::new(),
    };
    // Events whose kind's schema record is damaged cannot be decoded: counted.
    let mut schemaless = 0u64;
    for r in &s.records {
        let payload = &bytes[r.payload.clone()];
        let offset = clean.as_ref().map_or(r.offset as u64, |c| c.len() as u64);
        let keep = match r.ty {
            RecordType::Schema => match codec::decode_schema(payload) {
                Ok(schema) if r.seq < u64::from(u16::MAX) => {
                    let i = r.seq as usize;
                    if meta.schemas.len() <= i {
                        meta.schemas.resize(i + 1, None);
                    }
                    meta.schemas[i] = Some(Arc::new(schema));
                    true
                }
                Ok(_) => false,
                Err(e) => {
                    tracing::error!(segment = %path.display(), "unreadable schema record: {e}");
                    false
                }
            },
            RecordType::Resource => match codec::decode_resource(payload) {
                Ok(res) => {
                    meta.resource = Some(Arc::new(res));
                    true
                }
                Err(_) => false,
            },
            RecordType::Event => {
                if r.seq < meta.next_seq && r.seq != header.base_seq {
                    false // out of order: not something we wrote
                } else {
                    if (r.seq - header.base_seq) % INDEX_EVERY == 0 || meta.index.is_empty() {
                        meta.index.push((r.seq, offset));
                    }
                    meta.next_seq = r.seq + 1;
                    report.events += 1;
                    // Its kind's schema record (written before it) is damaged: undecodable.
                    let kind = payload.get(..2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
                    if kind.is_none_or(|i| meta.schemas.get(i).is_none_or(Option::is_none)) {
                        schemaless += 1;
                    }
                    true
                }
            }
        };
        if let (true, Some(c)) = (keep, clean.as_mut()) {
            c.extend_from_slice(&bytes[r.offset..r.end()]);
        }
    }
    if schemaless > 0 {
        report.unreadable_events += schemaless;
        tracing::warn!(
            segment = %path.display(), events = schemaless,
            "spooled events whose schema record is damaged cannot be decoded and will not be delivered"
        );
    }
    meta.bytes = match clean {
        Some(c) => {
            crate::fs::write_atomic(path, &c)?;
            c.len() as u64
        }
        None => bytes.len() as u64,
    };
    Ok(meta)
}
