//! Spool writer, reader and recovery.

use super::segment::RecordType;
use super::writer::segment_name;
use super::*;
use crate::event::Event;
use crate::{NetworkEvent, RelayUsage};
use segment::HEADER_LEN;
use serde::Deserialize;
use std::path::Path;
use std::time::Instant;

fn res() -> Arc<Resource> {
    Arc::new(Resource::new("svc").with_instance_id("i"))
}

fn cfg(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        segment_bytes: 64 << 10,
        ..SpoolConfig::new(dir)
    }
}

/// A spool whose segments roll at `bytes`.
fn cfg_segments_of(dir: &Path, bytes: usize) -> SpoolConfig {
    SpoolConfig {
        segment_bytes: bytes,
        ..SpoolConfig::new(dir)
    }
}

fn relays(n: u64) -> Vec<Event> {
    (0..n)
        .map(|cu| {
            Event::new(RelayUsage {
                project: "p".into(),
                cu,
                ..Default::default()
            })
        })
        .collect()
}

fn read_all(shared: &Shared) -> Vec<Event> {
    let (events, _) = shared.read(0, u64::MAX, usize::MAX, usize::MAX, &|_| true).unwrap();
    events
}

#[test]
fn append_commit_read_and_reopen_continue_the_sequence() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, report) = Spool::open(cfg(d.path()), res()).unwrap();
    assert_eq!(report.events, 0);
    let a = relays(1000);
    let b: Vec<Event> = (0..10).map(|_| Event::new(NetworkEvent::default())).collect();
    assert_eq!(s.append(&a), 0);
    assert_eq!(s.append(&b), 1000);
    s.commit().unwrap();
    let back = read_all(&s.shared);
    assert_eq!(back.len(), 1010);
    for (x, y) in back.iter().zip(a.iter().chain(b.iter())) {
        assert_eq!((x.id(), x.ts(), x.values()), (y.id(), y.ts(), y.values()));
        assert_eq!(x.resource().unwrap().service_name, "svc");
    }
    // Kind filter and ranges.
    let (only, next) = s
        .shared
        .read(990, 1005, usize::MAX, usize::MAX, &|k| k == "network_event")
        .unwrap();
    assert_eq!((only.len(), next), (5, 1005));
    let (first, next) = s.shared.read(0, u64::MAX, 7, usize::MAX, &|_| true).unwrap();
    assert_eq!((first.len(), next), (7, 7));
    assert!(s.shared.stats().segments > 1, "64 KiB segments rolled");
    drop(s);
    let (mut s, report) = Spool::open(cfg(d.path()), res()).unwrap();
    assert_eq!((report.events, report.quarantined_bytes), (1010, 0));
    assert_eq!(s.append(&relays(1)), 1010);
    s.commit().unwrap();
    assert_eq!(read_all(&s.shared).len(), 1011);
}

fn last_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

#[test]
fn torn_tail_at_every_offset_recovers_every_whole_event() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = Spool::open(cfg(d.path()), res()).unwrap();
    let sent = relays(6);
    s.append(&sent);
    s.commit().unwrap();
    drop(s);
    let seg = last_segment(d.path());
    let full = std::fs::read(&seg).unwrap();
    let records = segment::scan(&full).records;
    for cut in HEADER_LEN..full.len() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("segments")).unwrap();
        std::fs::write(dir.path().join("segments").join(seg.file_name().unwrap()), &full[..cut]).unwrap();
        let (s, report) = Spool::open(cfg(dir.path()), res()).unwrap();
        let whole = records
            .iter()
            .filter(|r| r.ty == RecordType::Event && r.end() <= cut)
            .count();
        let back = read_all(&s.shared);
        assert_eq!(back.len(), whole, "cut at {cut}");
        for (x, y) in back.iter().zip(sent.iter()) {
            assert_eq!(x.id(), y.id());
        }
        let torn = cut
            - records
                .iter()
                .filter(|r| r.end() <= cut)
                .map(|r| r.end())
                .max()
                .unwrap_or(HEADER_LEN);
        assert_eq!(report.quarantined_bytes, torn as u64, "cut at {cut}");
    }
}

#[test]
fn corruption_in_the_middle_is_quarantined_and_the_rest_kept() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = Spool::open(cfg(d.path()), res()).unwrap();
    let sent = relays(50);
    s.append(&sent);
    s.commit().unwrap();
    drop(s);
    let seg = last_segment(d.path());
    let mut b = std::fs::read(&seg).unwrap();
    let records = segment::scan(&b).records;
    let victim = records
        .iter()
        .filter(|r| r.ty == RecordType::Event)
        .nth(20)
        .unwrap()
        .clone();
    b[victim.payload.start + 3] ^= 0x40;
    std::fs::write(&seg, &b).unwrap();
    let (mut s, report) = Spool::open(cfg(d.path()), res()).unwrap();
    assert_eq!(report.quarantined_regions, 1);
    assert_eq!(report.quarantined_bytes, (victim.end() - victim.offset) as u64);
    let back = read_all(&s.shared);
    assert_eq!(back.len(), 49);
    assert!(!back.iter().any(|e| e.id() == sent[20].id()));
    assert_eq!(s.shared.stats().quarantined_bytes, report.quarantined_bytes);
    let q: Vec<_> = std::fs::read_dir(d.path().join("quarantine")).unwrap().collect();
    assert_eq!(q.len(), 1);
    // The segment was rewritten clean: a second open finds nothing to quarantine.
    s.append(&relays(1));
    s.commit().unwrap();
    drop(s);
    let (_, report) = Spool::open(cfg(d.path()), res()).unwrap();
    assert_eq!((report.quarantined_bytes, report.events), (0, 50));
}

#[test]
fn garbage_segment_files_are_quarantined_whole() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("segments")).unwrap();
    std::fs::write(
        d.path().join("segments/00000000000000000007.seg"),
        b"definitely not a segment",
    )
    .unwrap();
    let (s, report) = Spool::open(cfg(d.path()), res()).unwrap();
    assert_eq!(report.quarantined_bytes, 24);
    assert_eq!(read_all(&s.shared).len(), 0);
}

#[test]
fn gc_deletes_only_segments_every_cursor_passed() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = Spool::open(cfg(d.path()), res()).unwrap();
    for _ in 0..60 {
        s.append(&relays(100));
        s.commit().unwrap();
    }
    let before = s.shared.stats();
    assert!(before.segments > 3);
    s.gc(1000);
    let after = s.shared.stats();
    assert!(after.segments < before.segments);
    assert!(after.oldest_seq <= 1000, "nothing at or above the cursor is gone");
    let (events, _) = s
        .shared
        .read(1000, u64::MAX, usize::MAX, usize::MAX, &|_| true)
        .unwrap();
    assert_eq!(events.len(), 5000);
    s.gc(u64::MAX);
    assert_eq!(s.shared.stats().segments, 1, "the active segment stays");
    assert!(!s.is_full());
}

#[test]
fn the_byte_bound_reports_full() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = Spool::open(
        SpoolConfig {
            max_bytes: 20_000,
            ..cfg(d.path())
        },
        res(),
    )
    .unwrap();
    s.append(&relays(200));
    s.commit().unwrap();
    assert!(s.is_full());
}

#[test]
#[allow(clippy::result_large_err)] // figment's error type
fn fsync_mode_parses() {
    #[derive(Deserialize)]
    struct W {
        m: FsyncMode,
    }
    use figment::providers::Format;
    let p = |t: &str| {
        figment::Figment::from(figment::providers::Toml::string(&format!("m = {t:?}")))
            .extract::<W>()
            .map(|w| w.m)
    };
    assert_eq!(p("batch").unwrap(), FsyncMode::Batch);
    assert_eq!(p("never").unwrap(), FsyncMode::Never);
    assert_eq!(
        p("interval:100ms").unwrap(),
        FsyncMode::Interval(Duration::from_millis(100))
    );
    assert!(p("sometimes")
        .unwrap_err()
        .to_string()
        .contains("invalid fsync mode \"sometimes\""));
}

#[test]
fn reads_across_many_commits_and_segments_in_windows() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = Spool::open(
        SpoolConfig {
            segment_bytes: 32 << 10,
            ..SpoolConfig::new(d.path())
        },
        res(),
    )
    .unwrap();
    let mut ids = Vec::new();
    for _ in 0..50 {
        let batch = relays(400);
        ids.extend(batch.iter().map(|e| e.id()));
        s.append(&batch);
        s.commit().unwrap();
    }
    let mut pos = 200;
    let mut got = Vec::new();
    while pos < 20_000 {
        let (events, next) = s.shared.read(pos, 20_000, 100, usize::MAX, &|_| true).unwrap();
        assert!(next > pos, "no progress at {pos}");
        assert!(!events.is_empty(), "empty read at {pos} -> {next}");
        got.extend(events.iter().map(|e| e.id()));
        pos = next;
    }
    assert_eq!(got.len(), 19_800);
    assert!(got == ids[200..], "same ids in order");
}

#[test]
fn a_second_writer_is_refused_naming_the_first() {
    let d = tempfile::tempdir().unwrap();
    let (mut first, _) = Spool::open(cfg(d.path()), res()).unwrap();
    let err = Spool::open(cfg(d.path()), res()).err().expect("refused").to_string();
    assert!(
        err.contains(&format!("locked by another process (pid {})", std::process::id())),
        "{err}"
    );
    // A read-only look is allowed, changes nothing and names the writer.
    let look = inspect(d.path()).unwrap();
    assert_eq!(look.writer_pid, Some(std::process::id()));
    first.unlock();
    assert_eq!(inspect(d.path()).unwrap().writer_pid, None);
    drop(first);
    Spool::open(cfg(d.path()), res()).unwrap();
}

/// Review H1: a roll that fails used to leave no active segment, after which commits
/// "succeeded" writing nothing. Now the old segment stays active and the next commit
/// rolls again.
#[test]
fn a_failed_roll_keeps_the_spool_writable_and_is_retried() {
    let d = tempfile::tempdir().unwrap();
    let small = cfg_segments_of(d.path(), 4096);
    let (mut s, _) = Spool::open(small, res()).unwrap();
    // Every segment name a roll could take is a directory: creating it fails (as root too).
    let blockers: Vec<PathBuf> = (1..=150)
        .map(|seq| d.path().join("segments").join(segment_name(seq)))
        .collect();
    for b in &blockers {
        std::fs::create_dir_all(b).unwrap();
    }
    let mut sent = 0;
    while s.next_seq() < 150 {
        s.append(&relays(1));
        s.commit().unwrap();
        sent += 1;
    }
    assert_eq!(
        s.shared.stats().segments,
        1,
        "every roll failed, the segment stays active"
    );
    assert!(s.shared.stats().bytes > 4096, "and keeps growing past segment_bytes");
    for b in &blockers {
        std::fs::remove_dir(b).unwrap();
    }
    // Failed rolls are retried at an interval, not on every commit.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.shared.stats().segments < 2 {
        assert!(Instant::now() < deadline, "never rolled once the way was clear");
        s.append(&relays(1));
        s.commit().unwrap();
        sent += 1;
        std::thread::yield_now();
    }
    assert_eq!(read_all(&s.shared).len(), sent);
    drop(s);
    let (s, report) = Spool::open(cfg(d.path()), res()).unwrap();
    assert_eq!(report.events, sent as u64);
    assert_eq!(report.quarantined_bytes, 0);
    assert_eq!(read_all(&s.shared).len(), sent);
}

/// A segment deleted or emptied under a lagging exporter is loss: counted from the
/// sequence gap, not silent.
#[test]
fn missing_segments_are_counted_from_sequence_gaps() {
    let d = tempfile::tempdir().unwrap();
    let small = cfg_segments_of(d.path(), 4096);
    let (mut s, _) = Spool::open(small.clone(), res()).unwrap();
    for _ in 0..10 {
        s.append(&relays(40));
        s.commit().unwrap();
    }
    let metas = s.shared.lock_segments_mut().clone();
    assert!(metas.len() >= 4, "{} segments", metas.len());
    drop(s);
    // The second segment emptied (truncated to 0 bytes), the third deleted.
    let (second, third) = (&metas[1], &metas[2]);
    std::fs::write(&second.path, b"").unwrap();
    std::fs::remove_file(&third.path).unwrap();
    let lost = third.next_seq - second.base_seq;
    let look = inspect(d.path()).unwrap();
    assert_eq!(look.missing_events, lost);
    let (s, report) = Spool::open(small, res()).unwrap();
    assert_eq!(report.missing_events, lost);
    assert_eq!(report.events, 400 - lost);
    assert_eq!(read_all(&s.shared).len() as u64, 400 - lost);
}

/// Segments used to come out about 8x `segment_bytes`: one commit wrote its whole
/// buffer before rolling. Now a long append rolls as it goes.
#[test]
fn segments_stay_near_segment_bytes_even_within_one_commit() {
    let d = tempfile::tempdir().unwrap();
    let small = cfg_segments_of(d.path(), 8192);
    let (mut s, _) = Spool::open(small.clone(), res()).unwrap();
    s.append(&relays(2000));
    s.commit().unwrap();
    let segments = s.shared.lock_segments_mut().clone();
    assert!(segments.len() > 10, "{} segments", segments.len());
    for seg in &segments {
        let len = std::fs::metadata(&seg.path).unwrap().len();
        assert!(len < 8192 + 1024, "{} is {len} bytes", seg.path.display());
    }
    assert_eq!(read_all(&s.shared).len(), 2000);
    drop(s);
    let (s, report) = Spool::open(small, res()).unwrap();
    assert_eq!((report.events, report.quarantined_bytes), (2000, 0));
    assert_eq!(read_all(&s.shared).len(), 2000);
}

/// A kill during an atomic write (a recovery rewrite, a quarantine file, a cursor)
/// leaves a hidden temp file; the next owner removes it and nothing else.
#[test]
fn temp_files_of_an_interrupted_write_are_removed_at_open() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = Spool::open(cfg(d.path()), res()).unwrap();
    s.append(&relays(3));
    s.commit().unwrap();
    drop(s);
    let stale = [
        d.path().join("segments").join(".00000000000000000000.seg.tmp"),
        d.path().join("cursors").join(".out.cursor.tmp"),
        d.path().join("quarantine").join(".x.bin.tmp"),
    ];
    for f in &stale {
        std::fs::write(f, b"half").unwrap();
    }
    let (s, report) = Spool::open(cfg(d.path()), res()).unwrap();
    assert_eq!(report.events, 3);
    for f in &stale {
        assert!(!f.exists(), "{} left behind", f.display());
    }
    assert_eq!(read_all(&s.shared).len(), 3);
}

/// A kind the gateway does not know is read with a schema inferred from each
/// record: one kind, several schemas. Each gets its own schema record (the kind's
/// first schema used to stand for all of them, and the others' events were lost
/// when read back).
#[test]
fn a_kind_with_two_schemas_keeps_both() {
    use crate::event::schema::{FieldDef, FieldType, Schema};
    use crate::event::value::OwnedValue;
    use crate::Record;
    use std::borrow::Cow;
    let schema = |field: &'static str, ty| {
        Arc::new(Schema {
            kind: Cow::Borrowed("x"),
            fields: Cow::Owned(vec![FieldDef::new(field, ty, true)]),
        })
    };
    let event = |schema: &Arc<Schema>, v| Event::from_record(Record::new(schema.clone(), vec![v]).unwrap());
    let (a, b) = (schema("a", FieldType::Str), schema("b", FieldType::I64));
    // The same schema again, in another allocation (the next request's).
    let a_again = schema("a", FieldType::Str);
    let sent = vec![
        event(&a, OwnedValue::Str("one".into())),
        event(&b, OwnedValue::I64(2)),
        event(&a, OwnedValue::Str("three".into())),
        event(&a_again, OwnedValue::Null),
        event(&b, OwnedValue::I64(5)),
    ];
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = Spool::open(cfg(d.path()), res()).unwrap();
    for e in &sent {
        s.append(std::slice::from_ref(e));
    }
    s.commit().unwrap();
    let fields = |events: &[Event]| -> Vec<(crate::EventId, String)> {
        events.iter().map(|e| (e.id(), format!("{:?}", e.values()))).collect()
    };
    assert_eq!(fields(&read_all(&s.shared)), fields(&sent));
    drop(s);
    let (s, report) = Spool::open(cfg(d.path()), res()).unwrap();
    assert_eq!((report.events, report.quarantined_bytes), (5, 0));
    assert_eq!(fields(&read_all(&s.shared)), fields(&sent));
}

/// The frame's checksum as the segment format states it, whatever calls compute it.
#[test]
fn a_record_checksum_covers_length_type_seq_and_payload_seeded() {
    let mut out = b"before".to_vec();
    segment::encode_record(&mut out, 77, RecordType::Event, 5, b"payload");
    let mut covered = 7u32.to_le_bytes().to_vec();
    covered.push(RecordType::Event as u8);
    covered.extend_from_slice(&5u64.to_le_bytes());
    covered.extend_from_slice(b"payload");
    let frame = &out[6..];
    assert_eq!(frame[8..12], crc32c::crc32c_append(77, &covered).to_le_bytes());
    assert_eq!(&frame[21..], b"payload");
    assert!(matches!(segment::parse_record(&out, 6, 77), segment::Parsed::Record(_)));
    assert_eq!(
        segment::parse_record(&out, 6, 78),
        segment::Parsed::Invalid,
        "another seed"
    );
}
