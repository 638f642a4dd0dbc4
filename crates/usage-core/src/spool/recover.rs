//! Recovery: scanning segment files, quarantining damage, rebuilding metadata.

use super::catalog::Catalog;
use super::segment::{self, Header, RecordType};
use super::{codec, RecoveryReport, SegmentMeta, INDEX_EVERY};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The segment files of the spool at `dir`, oldest first (names are base seqs).
pub(crate) fn segment_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir.join("segments"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    names.sort();
    Ok(names)
}

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

/// Events by (schema reference, resource reference).
type ReferenceCounts = HashMap<(u64, Option<u64>), u64>;

/// Recovery of the segments of one spool, oldest first. A format-2 event refers to
/// its schema and resource by fingerprint, and a copy may sit in any segment, so
/// whether an event is readable is settled in [`finish`](Recovery::finish), once
/// every copy has been seen.
pub(crate) struct Recovery<'a> {
    dir: &'a Path,
    dry_run: bool,
    pub(crate) report: RecoveryReport,
    catalog: Catalog,
    /// Per format-2 segment: events by what they refer to.
    references: Vec<(PathBuf, ReferenceCounts)>,
}

impl<'a> Recovery<'a> {
    /// `dry_run` changes nothing on disk (for read-only views).
    pub(crate) fn new(dir: &'a Path, dry_run: bool) -> Self {
        Recovery {
            dir,
            dry_run,
            report: RecoveryReport::default(),
            catalog: Catalog::with_compiled_kinds(),
            references: Vec::new(),
        }
    }

    /// Scans one segment file; quarantines damage and rewrites the file with only its
    /// intact records. `Ok(None)` when nothing usable remains (the file is removed).
    pub(crate) fn segment(&mut self, path: &Path) -> std::io::Result<Option<SegmentMeta>> {
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
                self.report.quarantined_regions += 1;
            }
            self.report.quarantined_bytes += damaged.len() as u64;
            if !self.dry_run {
                let q = self
                    .dir
                    .join("quarantine")
                    .join(format!("{name}.{}.bin", crate::Timestamp::now().as_micros()));
                crate::fs::write_atomic(&q, &damaged)?;
                tracing::error!(
                    segment = %path.display(), bytes = damaged.len(), regions = s.damaged.len(), quarantine = %q.display(),
                    "damaged spool bytes quarantined{}", s.header_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
                );
            }
        }
        let Some(header) = s.header else {
            if !self.dry_run {
                std::fs::remove_file(path)?;
            }
            return Ok(None);
        };
        let clean = (!s.damaged.is_empty() && !self.dry_run).then(|| header.encode().to_vec());
        self.build_meta(path, &bytes, &s, header, clean).map(Some)
    }

    /// Builds a segment's metadata from a scan; with `clean`, also rebuilds the file
    /// from its intact records only and writes it in place.
    fn build_meta(
        &mut self,
        path: &Path,
        bytes: &[u8],
        s: &segment::Scan,
        header: Header,
        mut clean: Option<Vec<u8>>,
    ) -> std::io::Result<SegmentMeta> {
        let mut meta = SegmentMeta {
            path: path.to_path_buf(),
            version: header.version,
            base_seq: header.base_seq,
            next_seq: header.base_seq,
            bytes: 0,
            schemas: Vec::new(),
            resource: None,
            index: Vec::new(),
        };
        let by_reference = header.version >= 2;
        let mut references = ReferenceCounts::new();
        let mut run: Option<((u64, Option<u64>), u64)> = None;
        let damaged_before = self.report.damaged_events;
        // Format 1: events whose kind's schema record is damaged cannot be decoded.
        let mut schemaless = 0u64;
        for r in &s.records {
            let payload = &bytes[r.payload.clone()];
            let offset = clean.as_ref().map_or(r.offset as u64, |c| c.len() as u64);
            let keep = match r.ty {
                RecordType::Schema if by_reference => self.catalog.add_schema_record(r.seq, payload),
                RecordType::Resource if by_reference => self.catalog.add_resource_record(r.seq, payload),
                RecordType::Schema => match codec::decode_schema(payload) {
                    Ok(schema) if r.seq < u64::from(u16::MAX) => {
                        let i = r.seq as usize;
                        if meta.schemas.len() <= i {
                            meta.schemas.resize(i + 1, None);
                        }
                        meta.schemas[i] = Some(Arc::new(schema));
                        true
                    }
                    Ok(_) | Err(_) => false,
                },
                RecordType::Resource => match codec::decode_resource(payload) {
                    Ok(res) => {
                        meta.resource = Some(Arc::new(res));
                        true
                    }
                    Err(_) => false,
                },
                RecordType::Event if r.seq < meta.next_seq && r.seq != header.base_seq => {
                    false // out of order: not something we wrote
                }
                RecordType::Event => {
                    // Seqs within a segment are consecutive: a gap is event records lost
                    // to damage (their bytes are in quarantine).
                    self.report.damaged_events += r.seq - meta.next_seq;
                    if (r.seq - header.base_seq).is_multiple_of(INDEX_EVERY) || meta.index.is_empty() {
                        meta.index.push((r.seq, offset));
                    }
                    meta.next_seq = r.seq + 1;
                    self.report.events += 1;
                    if by_reference {
                        // A payload too short to name them cannot be resolved: u64::MAX is no
                        // fingerprint any record is filed under in practice.
                        let key = codec::references(payload).unwrap_or((u64::MAX, None));
                        // Runs of one kind are the rule: count a run, hash once per run.
                        match run.as_mut() {
                            Some((k, n)) if *k == key => *n += 1,
                            _ => {
                                if let Some((k, n)) = run.replace((key, 1)) {
                                    *references.entry(k).or_default() += n;
                                }
                            }
                        }
                    } else {
                        let refs = codec::Refs::Segment {
                            schemas: &meta.schemas,
                            resource: None,
                        };
                        schemaless += u64::from(refs.schema_of(payload).is_none());
                    }
                    true
                }
            };
            if let (true, Some(c)) = (keep, clean.as_mut()) {
                c.extend_from_slice(&bytes[r.offset..r.end()]);
            }
        }
        if schemaless > 0 {
            self.unreadable(path, schemaless);
        }
        let damaged = self.report.damaged_events - damaged_before;
        if damaged > 0 {
            tracing::warn!(
                segment = %path.display(), events = damaged,
                "spooled events were lost to damaged records and will not be delivered (counted from sequence gaps)"
            );
        }
        if let Some((k, n)) = run {
            *references.entry(k).or_default() += n;
        }
        if by_reference {
            self.references.push((path.to_path_buf(), references));
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

    fn unreadable(&mut self, path: &Path, events: u64) {
        self.report.unreadable_events += events;
        tracing::warn!(
            segment = %path.display(), events,
            "spooled events whose schema or resource record is damaged in every copy cannot be decoded and will not be delivered"
        );
    }

    /// Counts the format-2 events whose schema or resource no intact copy holds, and
    /// returns the report and every schema and resource found.
    pub(crate) fn finish(mut self) -> (RecoveryReport, Catalog) {
        let references = std::mem::take(&mut self.references);
        for (path, refs) in references {
            let lost: u64 = refs
                .iter()
                .filter(|((schema, resource), _)| {
                    self.catalog.schema(*schema).is_none()
                        || resource.is_some_and(|r| self.catalog.resource(r).is_none())
                })
                .map(|(_, n)| n)
                .sum();
            if lost > 0 {
                self.unreadable(&path, lost);
            }
        }
        (self.report, self.catalog)
    }
}
