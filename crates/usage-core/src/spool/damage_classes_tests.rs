//! The damage classes of the black-box check that found the spool's gaps, each
//! applied to a copy of one spool of many segments and three kinds: every intact
//! event is delivered, and what is lost is counted. `--nocapture` prints the table.

use super::damage_tests::{mixed_event, res};
use super::segment::{self, RecordType};
use super::writer::Spool;
use super::*;
use crate::event::Event;
use crate::EventId;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::Path;

/// The spool of these tests: 64 KiB segments.
fn cfg(dir: &Path) -> SpoolConfig {
    super::damage_tests::cfg(dir, 64 << 10)
}

/// One written spool: its segment files, and which event each record range holds.
struct Written {
    files: Vec<(String, Vec<u8>)>,
    /// Per file: (record range, event id for event records).
    records: Vec<Vec<(Range<usize>, Option<EventId>)>>,
    ids: HashSet<EventId>,
    /// The spool's very last event: damage to it looks like a torn write.
    last: EventId,
}

fn write_spool(n: u64) -> Written {
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = Spool::open(cfg(d.path()), res()).unwrap();
    let mut by_seq = HashMap::new();
    let mut ids = HashSet::new();
    for start in (0..n).step_by(500) {
        let chunk: Vec<Event> = (start..(start + 500).min(n)).map(mixed_event).collect();
        let first = s.append(&chunk);
        for (i, e) in chunk.iter().enumerate() {
            by_seq.insert(first + i as u64, e.id());
            ids.insert(e.id());
        }
        s.commit().unwrap();
    }
    drop(s);
    let paths = super::recover::segment_files(d.path()).unwrap();
    let files: Vec<(String, Vec<u8>)> = paths
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(p).unwrap(),
            )
        })
        .collect();
    let records = files
        .iter()
        .map(|(_, b)| {
            segment::scan(b)
                .records
                .iter()
                .map(|r| (r.offset..r.end(), (r.ty == RecordType::Event).then(|| by_seq[&r.seq])))
                .collect()
        })
        .collect();
    let last = by_seq[&(n - 1)];
    Written {
        files,
        records,
        ids,
        last,
    }
}

/// A damage: what it does to the files, and the byte ranges it touches per file.
type Damage = fn(&mut Vec<Option<Vec<u8>>>, &Written) -> Vec<(usize, Range<usize>)>;

fn first_record(w: &Written, f: usize, ty: RecordType) -> Range<usize> {
    let b = &w.files[f].1;
    let r = segment::scan(b).records.into_iter().find(|r| r.ty == ty).unwrap();
    r.offset..r.end()
}

/// The first schema record of `kind` in file `f`.
fn schema_record_of(w: &Written, f: usize, kind: &str) -> Range<usize> {
    let b = &w.files[f].1;
    let r = segment::scan(b)
        .records
        .into_iter()
        .find(|r| {
            r.ty == RecordType::Schema && codec::decode_schema(&b[r.payload.clone()]).is_ok_and(|s| s.kind == kind)
        })
        .unwrap();
    r.offset..r.end()
}

fn classes() -> Vec<(&'static str, Damage)> {
    vec![
        ("bit flip in a schema record", |files, w| {
            let m = w.files.len() / 2;
            let r = first_record(w, m, RecordType::Schema);
            files[m].as_mut().unwrap()[r.start + 25] ^= 0x08;
            vec![(m, r.start + 25..r.start + 26)]
        }),
        ("bit flip in the schema record of a kind not compiled in", |files, w| {
            let m = w.files.len() / 2;
            let r = schema_record_of(w, m, "meter_reading");
            files[m].as_mut().unwrap()[r.start + 30] ^= 0x08;
            vec![(m, r.start + 30..r.start + 31)]
        }),
        ("bit flip in a resource record", |files, w| {
            let m = w.files.len() / 2;
            let r = first_record(w, m, RecordType::Resource);
            files[m].as_mut().unwrap()[r.start + 24] ^= 0x02;
            vec![(m, r.start + 24..r.start + 25)]
        }),
        ("bit flip in a segment header", |files, w| {
            let m = w.files.len() / 2;
            files[m].as_mut().unwrap()[14] ^= 0x01;
            vec![(m, 14..15)]
        }),
        ("first 4 KiB of a segment zeroed", |files, w| {
            let m = w.files.len() / 2;
            files[m].as_mut().unwrap()[..4096].fill(0);
            vec![(m, 0..4096)]
        }),
        ("a segment truncated to 0 bytes", |files, w| {
            let m = w.files.len() / 2;
            files[m] = Some(Vec::new());
            vec![(m, 0..w.files[m].1.len())]
        }),
        ("a segment deleted", |files, w| {
            let m = w.files.len() / 2;
            files[m] = None;
            vec![(m, 0..w.files[m].1.len())]
        }),
        ("a segment cut in half", |files, w| {
            let m = w.files.len() / 2;
            let len = w.files[m].1.len();
            files[m].as_mut().unwrap().truncate(len / 2);
            vec![(m, len / 2..len)]
        }),
        ("junk appended to a segment", |files, w| {
            let m = w.files.len() / 2;
            files[m].as_mut().unwrap().extend_from_slice(&[0xa5; 300]);
            vec![]
        }),
        ("one bit flipped in every segment", |files, w| {
            (0..w.files.len())
                .map(|f| {
                    let at = (f * 7919 + 1000) % w.files[f].1.len();
                    files[f].as_mut().unwrap()[at] ^= 0x40;
                    (f, at..at + 1)
                })
                .collect()
        }),
    ]
}

#[test]
fn every_damage_class_delivers_every_intact_event_and_counts_the_rest() {
    let w = write_spool(20_000);
    assert!(w.files.len() >= 8, "{} segments", w.files.len());
    eprintln!("| damage | intact events delivered / expected | lost | counted lost |");
    eprintln!("|---|---|---|---|");
    for (name, damage) in classes() {
        let mut files: Vec<Option<Vec<u8>>> = w.files.iter().map(|(_, b)| Some(b.clone())).collect();
        let hits = damage(&mut files, &w);
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("segments")).unwrap();
        for ((file, _), bytes) in w.files.iter().zip(&files) {
            if let Some(b) = bytes {
                std::fs::write(d.path().join("segments").join(file), b).unwrap();
            }
        }
        let hit_ids: HashSet<EventId> = hits
            .iter()
            .flat_map(|(f, range)| {
                w.records[*f]
                    .iter()
                    .filter(|(r, _)| r.start < range.end && range.start < r.end)
                    .filter_map(|(_, id)| *id)
            })
            .collect();
        let (s, report) = Spool::open(cfg(d.path()), res()).unwrap();
        let (events, _) = s.shared.read(0, u64::MAX, usize::MAX, usize::MAX, &|_| true).unwrap();
        let delivered: HashSet<EventId> = events.iter().map(Event::id).collect();
        assert_eq!(delivered.len(), events.len(), "{name}: delivered twice");
        let intact: HashSet<EventId> = w.ids.difference(&hit_ids).copied().collect();
        let counted = report.damaged_events + report.missing_events + report.unreadable_events;
        eprintln!(
            "| {name} | {} / {} | {} | {counted} |",
            intact.intersection(&delivered).count(),
            intact.len(),
            w.ids.len() - delivered.len()
        );
        assert_eq!(delivered, intact, "{name}: delivered is not exactly the intact events");
        // Every lost event is counted, except damage to the spool's very last record,
        // which looks like a torn write (its bytes are quarantined).
        let torn_tail = u64::from(hit_ids.contains(&w.last));
        assert_eq!(
            counted + torn_tail,
            hit_ids.len() as u64,
            "{name}: every lost event is counted"
        );
    }
}
