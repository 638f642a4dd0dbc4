//! What damage costs: schemas and resources by reference, every single-byte damage
//! of a spool with several segments and kinds, and reading format-1 segments.

use super::segment;
use super::segment::{encode_record, Header, RecordType};
use super::writer::segment_name;
use super::*;
use crate::event::Event;
use crate::{EventId, FieldDef, FieldType, NetworkEvent, OwnedValue, Record, RelayUsage};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::Path;

pub(super) fn res() -> Arc<Resource> {
    Arc::new(Resource::new("svc").with_instance_id("i"))
}

pub(super) fn cfg(dir: &Path, segment_bytes: usize) -> SpoolConfig {
    SpoolConfig {
        segment_bytes,
        ..SpoolConfig::new(dir)
    }
}

/// A kind this binary was not compiled with (declared in config, say): only the
/// spool's own copies of its schema can decode it.
fn custom_schema() -> Arc<Schema> {
    Arc::new(Schema {
        kind: Cow::Borrowed("meter_reading"),
        fields: Cow::Owned(vec![
            FieldDef {
                name: Cow::Borrowed("meter"),
                ty: FieldType::Str,
                nullable: false,
            },
            FieldDef {
                name: Cow::Borrowed("value"),
                ty: FieldType::U64,
                nullable: false,
            },
        ]),
    })
}

pub(super) fn custom(n: u64) -> Event {
    let values = vec![OwnedValue::Str(format!("m-{n}").as_str().into()), OwnedValue::U64(n)];
    match Record::new(custom_schema(), values) {
        Ok(r) => Event::from_record(r),
        Err(e) => panic!("custom record: {e}"),
    }
}

/// Event `i` of a mix of three kinds: one carrying its own resource, one not compiled in.
pub(super) fn mixed_event(i: u64) -> Event {
    match i % 3 {
        0 => Event::new(RelayUsage {
            project: format!("p{i}").as_str().into(),
            cu: i,
            ..Default::default()
        }),
        1 => Event::new(NetworkEvent {
            event_type: "stream_started".into(),
            stream_id: format!("s{i}").as_str().into(),
            ..Default::default()
        })
        .with_resource(Arc::new(Resource::new("gateway-client"))),
        _ => custom(i),
    }
}

fn mixed(n: u64) -> Vec<Event> {
    (0..n).map(mixed_event).collect()
}

fn read_all(shared: &Shared) -> Vec<Event> {
    let (events, _) = shared.read(0, u64::MAX, usize::MAX, usize::MAX, &|_| true).unwrap();
    events
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    super::recover::segment_files(dir).unwrap()
}

fn flip_first_schema_record(path: &Path, kind: &str) {
    let mut bytes = std::fs::read(path).unwrap();
    let schema = segment::scan(&bytes)
        .records
        .into_iter()
        .find(|r| r.ty == RecordType::Schema && codec::decode_schema(&bytes[r.payload.clone()]).unwrap().kind == kind)
        .expect("a schema record of the kind");
    bytes[schema.payload.start + 3] ^= 0x10;
    std::fs::write(path, &bytes).unwrap();
}

/// Review M7: a flipped bit in a schema record lost a kind's events. A compiled-in
/// kind's schema is known to the binary itself.
#[test]
fn a_damaged_schema_of_a_compiled_kind_costs_no_event() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = Spool::open(cfg(d.path(), 64 << 10), res()).unwrap();
    s.append(
        &mixed(30)
            .into_iter()
            .filter(|e| e.kind() == "relay_usage")
            .collect::<Vec<_>>(),
    );
    s.commit().unwrap();
    drop(s);
    flip_first_schema_record(&segment_files(d.path())[0], "relay_usage");
    let (s, report) = Spool::open(cfg(d.path(), 64 << 10), res()).unwrap();
    assert_eq!((report.unreadable_events, report.quarantined_regions), (0, 1));
    assert_eq!(read_all(&s.shared).len(), 10);
}

/// A sealed segment ends with a second copy of its schemas, far from the first:
/// a kind the binary does not know survives damage to its segment's start.
#[test]
fn a_damaged_schema_of_another_kind_is_read_from_the_sealed_copy() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = Spool::open(cfg(d.path(), 1024), res()).unwrap();
    let customs: Vec<Event> = (0..8).map(custom).collect();
    s.append(&customs);
    let relays: Vec<Event> = mixed(60).into_iter().filter(|e| e.kind() == "relay_usage").collect();
    s.append(&relays);
    s.commit().unwrap();
    drop(s);
    let files = segment_files(d.path());
    assert!(files.len() >= 2, "{} segments", files.len());
    // The kind is in the first segment only.
    let in_first = |f: &PathBuf| String::from_utf8_lossy(&std::fs::read(f).unwrap()).contains("meter_reading");
    assert!(in_first(&files[0]) && !files[1..].iter().any(in_first));
    flip_first_schema_record(&files[0], "meter_reading");
    let (s, report) = Spool::open(cfg(d.path(), 1024), res()).unwrap();
    assert_eq!((report.unreadable_events, report.quarantined_regions), (0, 1));
    let back = read_all(&s.shared);
    assert_eq!(back.len(), 8 + relays.len());
    assert_eq!(back[7].values(), customs[7].values());
}

/// Any segment's copy serves every segment: the active segment, not sealed yet, has
/// one copy, and damage to it costs nothing while an older segment holds another.
#[test]
fn a_damaged_schema_in_the_active_segment_is_read_from_an_older_one() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = Spool::open(cfg(d.path(), 1024), res()).unwrap();
    let customs: Vec<Event> = (0..40).map(custom).collect();
    s.append(&customs);
    s.commit().unwrap();
    drop(s);
    let files = segment_files(d.path());
    assert!(files.len() >= 3, "{} segments", files.len());
    flip_first_schema_record(files.last().unwrap(), "meter_reading");
    let (s, report) = Spool::open(cfg(d.path(), 1024), res()).unwrap();
    assert_eq!((report.unreadable_events, report.quarantined_regions), (0, 1));
    assert_eq!(read_all(&s.shared).len(), 40);
}

/// When no intact copy is left anywhere, the events are not guessed at: counted as
/// unreadable, at recovery and by `inspect`, and not delivered.
#[test]
fn events_whose_every_schema_copy_is_damaged_are_counted() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, _) = Spool::open(cfg(d.path(), 64 << 10), res()).unwrap();
    s.append(&(0..30).map(custom).collect::<Vec<_>>());
    s.append(&mixed(3)[..1]);
    s.commit().unwrap();
    drop(s);
    flip_first_schema_record(&segment_files(d.path())[0], "meter_reading");
    assert_eq!(inspect(d.path()).unwrap().unreadable_events, 30);
    let (s, report) = Spool::open(cfg(d.path(), 64 << 10), res()).unwrap();
    assert_eq!(report.unreadable_events, 30);
    let back = read_all(&s.shared);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].kind(), "relay_usage");
}

/// Spools written before format 2 (schemas by index in their segment) still replay.
#[test]
fn format_1_segments_are_still_read() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("segments")).unwrap();
    let events = mixed(9);
    let mut file = Header {
        version: 1,
        base_seq: 7,
        created_micros: 1,
    }
    .encode()
    .to_vec();
    let mut payload = Vec::new();
    codec::encode_resource(&mut payload, &res());
    encode_record(&mut file, 0, RecordType::Resource, 0, &payload);
    let mut kinds: Vec<String> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let index = match kinds.iter().position(|k| k == e.kind()) {
            Some(x) => x,
            None => {
                payload.clear();
                codec::encode_schema(&mut payload, e.schema());
                encode_record(&mut file, 0, RecordType::Schema, kinds.len() as u64, &payload);
                kinds.push(e.kind().to_string());
                kinds.len() - 1
            }
        };
        payload.clear();
        codec::encode_event(&mut payload, 0, 0, e);
        let v1 = codec::to_format_1(&payload, index as u16);
        encode_record(&mut file, 0, RecordType::Event, 7 + i as u64, &v1);
    }
    std::fs::write(d.path().join("segments").join(segment_name(7)), &file).unwrap();
    let (s, report) = Spool::open(cfg(d.path(), 64 << 10), res()).unwrap();
    assert_eq!((report.events, report.quarantined_bytes), (9, 0));
    let back = read_all(&s.shared);
    assert_eq!(back.len(), 9);
    for (b, e) in back.iter().zip(&events) {
        assert_eq!((b.id(), b.kind(), b.values()), (e.id(), e.kind(), e.values()));
        let want = e.resource().cloned().unwrap_or_else(res);
        assert_eq!(b.resource().map(|r| r.as_ref()), Some(want.as_ref()));
    }
}

/// A spool of several segments and kinds, written once, with every record's place.
struct Pristine {
    dir: tempfile::TempDir,
    files: Vec<(PathBuf, Vec<u8>)>,
    events: HashMap<EventId, Event>,
    /// Per file: (byte range, event id if it is an event record).
    records: Vec<Vec<(std::ops::Range<usize>, Option<u64>)>>,
    seq_ids: HashMap<u64, EventId>,
    last_seq: u64,
}

fn pristine() -> Pristine {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, _) = Spool::open(cfg(dir.path(), 1024), res()).unwrap();
    let events = mixed(36);
    let mut seq_ids = HashMap::new();
    for chunk in events.chunks(5) {
        let first = s.append(chunk);
        for (i, e) in chunk.iter().enumerate() {
            seq_ids.insert(first + i as u64, e.id());
        }
        s.commit().unwrap();
    }
    let last_seq = s.next_seq() - 1;
    drop(s);
    let paths = segment_files(dir.path());
    assert!(paths.len() >= 4, "{} segments", paths.len());
    let files: Vec<(PathBuf, Vec<u8>)> = paths
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    let records = files
        .iter()
        .map(|(_, b)| {
            segment::scan(b)
                .records
                .iter()
                .map(|r| (r.offset..r.end(), (r.ty == RecordType::Event).then_some(r.seq)))
                .collect()
        })
        .collect();
    Pristine {
        dir,
        files,
        events: events.into_iter().map(|e| (e.id(), e)).collect(),
        records,
        seq_ids,
        last_seq,
    }
}

/// What one damaged byte cost, checked against what it hit.
fn check(p: &Pristine, file: usize, at: usize, delivered: &[Event], damaged: u64, unreadable: u64, missing: u64) {
    let hit_seq = p.records[file]
        .iter()
        .find(|(range, _)| range.contains(&at))
        .and_then(|(_, seq)| *seq);
    let mut seen = HashSet::new();
    for e in delivered {
        assert!(
            seen.insert(e.id()),
            "byte {at} of file {file}: {} delivered twice",
            e.id()
        );
        let original = &p.events[&e.id()];
        assert_eq!(
            e.values(),
            original.values(),
            "byte {at} of file {file}: values changed"
        );
        assert_eq!(
            e.resource().map(|r| r.as_ref()),
            Some(original.resource().cloned().unwrap_or_else(res).as_ref())
        );
    }
    let hit_id = hit_seq.map(|s| p.seq_ids[&s]);
    for id in p.events.keys() {
        if Some(*id) != hit_id {
            assert!(
                seen.contains(id),
                "byte {at} of file {file}: intact event {id} not delivered (hit {hit_seq:?})"
            );
        }
    }
    let lost = (p.events.len() - seen.len()) as u64;
    // Every lost event is counted, except damage to the very last record, which
    // looks like a torn write (its bytes are quarantined).
    let counted = damaged + unreadable + missing;
    if hit_seq == Some(p.last_seq) {
        assert!(counted <= lost, "byte {at} of file {file}");
    } else {
        assert_eq!(
            lost, counted,
            "byte {at} of file {file}: lost {lost}, counted {counted}"
        );
    }
}

/// Every single-byte damage (all bits of the byte flipped) of every segment, read the
/// way `usage spool replay` does: every intact event is delivered exactly once with its
/// values, and what is lost is counted.
#[test]
fn every_single_byte_damage_costs_at_most_the_record_it_hits() {
    let p = pristine();
    for (file, (path, bytes)) in p.files.iter().enumerate() {
        for at in 0..bytes.len() {
            let mut bent = bytes.clone();
            bent[at] ^= 0xff;
            std::fs::write(path, &bent).unwrap();
            let look = inspect(p.dir.path()).unwrap();
            let mut replay = SpoolReplay::open(p.dir.path(), 0).unwrap();
            let mut delivered = Vec::new();
            loop {
                let batch = replay.next_events(1000, &|_| true).unwrap();
                if batch.is_empty() {
                    break;
                }
                delivered.extend(batch);
            }
            check(
                &p,
                file,
                at,
                &delivered,
                look.damaged_events,
                look.unreadable_events,
                look.missing_events,
            );
        }
        std::fs::write(path, bytes).unwrap();
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(crate::testing::fuzz_cases(48)))]
    /// Single-bit damage through the writer's own recovery (quarantine, rewrite) and a
    /// second restart: the same accounting, and nothing counted twice.
    #[test]
    fn fuzz_every_single_bit_damage_recovers_the_same_way(pick in 0usize..usize::MAX, bit in 0u8..8) {
        let p = pristine();
        let total: usize = p.files.iter().map(|(_, b)| b.len()).sum();
        let mut at = pick % total;
        let file = p.files.iter().position(|(_, b)| if at < b.len() { true } else { at -= b.len(); false }).unwrap();
        let (path, bytes) = &p.files[file];
        let mut bent = bytes.clone();
        bent[at] ^= 1 << bit;
        std::fs::write(path, &bent).unwrap();
        let (s, report) = Spool::open(cfg(p.dir.path(), 1024), res()).unwrap();
        let delivered = read_all(&s.shared);
        check(&p, file, at, &delivered, report.damaged_events, report.unreadable_events, report.missing_events);
        proptest::prop_assert!(report.quarantined_bytes > 0);
        drop(s);
        // The damage went to quarantine/: a second restart finds a clean spool with
        // the same events (the gap a lost record left is still counted as damage).
        let (s, again) = Spool::open(cfg(p.dir.path(), 1024), res()).unwrap();
        proptest::prop_assert_eq!(again.quarantined_bytes, 0);
        proptest::prop_assert_eq!(read_all(&s.shared).len(), delivered.len());
    }
}
