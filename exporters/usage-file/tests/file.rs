//! The file exporter through a real pipeline, read back from disk.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use usage_core::{
    Batch, Event, Exporter, NetworkEvent, OptimizerQos, Pipeline, RelayUsage, Resource, Timestamp, UsageConfig,
};
use usage_file::read::{list_parts, read_part, scan, Filter};
use usage_file::{Compression, FileExporter};

fn at(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn relay(project: &str, cu: u64) -> RelayUsage {
    RelayUsage {
        project: project.into(),
        chain: "ETH1".into(),
        api_method: "eth_call".into(),
        cu,
        success: true,
        ..Default::default()
    }
}

fn config(dir: &std::path::Path, extra: &str) -> UsageConfig {
    usage_core::link_exporters!(usage_file);
    UsageConfig::from_toml(&format!(
        "[pipeline]\nservice_name = \"test\"\ndata_dir = {:?}\n{extra}",
        dir.display().to_string()
    ))
    .unwrap()
}

#[test]
fn events_land_in_event_time_partitions_and_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // No [exporters]: the pipeline uses `file` under data_dir.
    let p = Pipeline::from_config(&config(dir.path(), "")).unwrap();
    assert_eq!(p.exporter_names(), vec!["file"]);
    let sink = p.sink();
    let mut sent: HashMap<_, Event> = HashMap::new();
    let times = [
        "2026-01-01T10:59:59.999999Z",
        "2026-01-01T11:00:00Z",
        "2025-12-31T23:30:00.5Z",
    ];
    for i in 0..30 {
        let t = times[(i / 3) % 3];
        let e = match i % 3 {
            0 => Event::at(at(t), relay("acme", i as u64)),
            1 => Event::at(
                at(t),
                OptimizerQos {
                    provider: "p".into(),
                    selection_latency: 0.5,
                    ..Default::default()
                },
            ),
            _ => Event::at(
                at(t),
                NetworkEvent {
                    event_type: "stream_started".into(),
                    attributes: vec![("k".into(), "v".into())],
                    ..Default::default()
                },
            ),
        };
        sent.insert(e.id(), e.clone());
        sink.emit(e);
    }
    let report = p.shutdown_blocking(Duration::from_secs(10)).unwrap();
    assert_eq!(report.exporter("file").unwrap().delivered, 30);

    let parts = list_parts(dir.path(), &Filter::default());
    let mut dirs: Vec<String> = parts
        .iter()
        .map(|p| {
            p.path
                .parent()
                .unwrap()
                .strip_prefix(dir.path())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    assert!(
        dirs.contains(&"relay_usage/year=2026/month=01/day=01/hour=10".to_string()),
        "{dirs:?}"
    );
    assert!(
        dirs.contains(&"relay_usage/year=2025/month=12/day=31/hour=23".to_string()),
        "{dirs:?}"
    );
    assert!(
        dirs.contains(&"network_event/year=2026/month=01/day=01/hour=11".to_string()),
        "{dirs:?}"
    );
    assert!(parts.iter().all(|p| p.path.to_string_lossy().ends_with(".ndjson.zst")));

    let mut found = 0;
    for part in &parts {
        for e in read_part(part).unwrap() {
            let want = sent.get(&e.id()).expect("an id we sent");
            assert_eq!(e.ts(), want.ts());
            assert_eq!(e.kind(), want.kind());
            assert_eq!(e.values(), want.values(), "every field exact, types included");
            assert_eq!(e.resource().unwrap().service_name, "test");
            assert_eq!(e.kind(), part.partition.kind);
            assert_eq!(
                usage_file::Partition::of(e.kind(), e.ts()),
                part.partition,
                "partitioned by event time"
            );
            found += 1;
        }
    }
    assert_eq!(found, 30);
}

#[tokio::test]
async fn a_retried_batch_overwrites_its_parts_and_temp_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let exporter = FileExporter::new(dir.path(), Compression::Gzip);
    let batch = Batch::from_events(
        (0..10)
            .map(|i| Event::at(at("2026-02-03T04:05:06Z"), relay("p", i)))
            .collect(),
        Arc::new(Resource::new("svc")),
    );
    exporter.export(&batch).await.unwrap();
    exporter.export(&batch).await.unwrap();
    let hour = dir.path().join("relay_usage/year=2026/month=02/day=03/hour=04");
    // A crash mid-write leaves only a hidden temp file, which readers skip.
    std::fs::write(hour.join(".part-deadbeef.ndjson.gz.tmp"), b"partial").unwrap();
    let names: Vec<String> = std::fs::read_dir(&hour)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    assert_eq!(names.iter().filter(|n| n.starts_with("part-")).count(), 1, "{names:?}");
    let mut n = 0;
    scan(dir.path(), &Filter::default(), |_| n += 1).unwrap();
    assert_eq!(n, 10);
    exporter.healthcheck().await.unwrap();
}

/// A kill between write and rename leaves a hidden temp part; after a restart the
/// batch may be cut differently, so nothing would ever reuse its name. The next
/// exporter instance removes it on its first write, and nothing else.
#[tokio::test]
async fn temp_parts_a_killed_process_left_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let hour = dir.path().join("relay_usage/year=2026/month=02/day=03/hour=04");
    std::fs::create_dir_all(&hour).unwrap();
    let stale = hour.join(".part-deadbeef.ndjson.zst.tmp");
    std::fs::write(&stale, b"partial").unwrap();
    std::fs::write(hour.join("notes.txt"), b"not ours").unwrap();
    let exporter = FileExporter::new(dir.path(), Compression::Zstd);
    let batch = Batch::from_events(
        vec![Event::at(at("2026-02-03T05:00:00Z"), relay("p", 1))],
        Arc::new(Resource::new("svc")),
    );
    exporter.export(&batch).await.unwrap();
    assert!(!stale.exists());
    assert!(hour.join("notes.txt").exists());
}

#[test]
fn filters_prune_by_kind_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::from_config(&config(
        dir.path(),
        "[exporters.f]\ntype = \"file\"\ncompression = \"none\"",
    ))
    .unwrap();
    for (t, cu) in [
        ("2026-01-01T00:10:00Z", 1),
        ("2026-01-01T01:10:00Z", 10),
        ("2026-01-01T02:10:00Z", 100),
    ] {
        p.sink().emit(Event::at(at(t), relay("a", cu)));
    }
    p.sink()
        .emit(Event::at(at("2026-01-01T01:20:00Z"), NetworkEvent::default()));
    p.shutdown_blocking(Duration::from_secs(10)).unwrap();
    let filter = Filter {
        kind: Some("relay_usage".into()),
        from: Some(at("2026-01-01T01:00:00Z")),
        to: Some(at("2026-01-01T02:10:00Z")),
    };
    let mut cu = 0;
    scan(dir.path(), &filter, |e| {
        if let Some(usage_core::Value::U64(v)) = e.field("cu") {
            cu += v;
        }
    })
    .unwrap();
    assert_eq!(cu, 10, "only the 01:10 relay is in [01:00, 02:10)");
    assert_eq!(
        list_parts(dir.path(), &filter).len(),
        2,
        "hours 01 and 02 overlap the range"
    );
}

#[test]
fn bad_file_settings_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let e = Pipeline::from_config(&config(
        dir.path(),
        "[exporters.f]\ntype = \"file\"\ncompression = \"lz5\"",
    ))
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("exporters.f.compression: unknown variant: found `lz5`"),
        "{e}"
    );
    let e = Pipeline::from_config(&config(dir.path(), "[exporters.f]\ntype = \"file\"\nlevel = 40")).unwrap_err();
    assert_eq!(e.to_string(), "exporters.f.level: 40 is out of range 1..=22 for Zstd");
}
