//! The `usage` binary, run as a user would.

mod common;

use common::{first_part, text, total_line, usage};
use std::path::Path;
use std::process::Output;

#[test]
fn demo_then_report_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let o = usage(
        dir.path(),
        &["demo", "--seconds", "1", "--threads", "2", "--rate", "5000"],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("data: usage-data"), "{out}");
    let o = usage(dir.path(), &["report"]);
    let (report, err) = text(&o);
    assert!(o.status.success(), "{err}");
    // The report's totals equal what is on disk.
    let mut events = 0u64;
    let mut cu = 0u64;
    usage_file::read::scan(
        &dir.path().join("usage-data"),
        &usage_file::read::Filter {
            kind: Some("relay_usage".into()),
            ..Default::default()
        },
        |e| {
            events += 1;
            if let Some(usage_core::Value::U64(c)) = e.field("cu") {
                cu += c;
            }
        },
    )
    .unwrap();
    assert!(events > 1000, "{events}");
    assert_eq!(total_line(&report)[..2], [events, cu], "{report}");
    // An at-least-once re-send writes the same events (same ids) again: a copy of a
    // part. Billing counts each id once, unless asked not to.
    let part = first_part(&dir.path().join("usage-data/relay_usage"));
    let copy = part.with_file_name("part-resent.ndjson.zst");
    std::fs::copy(&part, &copy).unwrap();
    let o = usage(dir.path(), &["report"]);
    let (report, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(total_line(&report)[..2], [events, cu], "{report}");
    assert!(
        report.contains("re-sent events (same id in the same project) counted once"),
        "{report}"
    );
    let o = usage(dir.path(), &["report", "--no-dedup"]);
    let (report, _) = text(&o);
    assert!(total_line(&report)[0] > events, "{report}");
    // A range in the future has nothing.
    let o = usage(dir.path(), &["report", "--from", "2999-01-01"]);
    assert!(o.status.success());
    assert!(text(&o).0.contains("no relay_usage events"));
}

/// Writes `events` as one uncompressed part of the file layout under `root`.
fn write_part(root: &Path, name: &str, events: &[usage_core::Event]) {
    use usage_file::layout::{part_file_name, Compression, Partition};
    let partition = Partition::of("relay_usage", events[0].ts());
    let dir = root.join(partition.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let mut body = Vec::new();
    usage_core::json::write_ndjson(&mut body, events, &usage_core::Resource::new("t"));
    std::fs::write(dir.join(part_file_name(name, Compression::None)), body).unwrap();
}

#[test]
fn report_dedups_ids_per_project_and_flags_ids_reused_for_other_events() {
    // Review M4: a tenant reusing another's id must not hide the other's event.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let relay = |project: &str, cu: u64| {
        usage_core::Event::new(usage_core::RelayUsage {
            project: project.into(),
            chain: "ETH1".into(),
            cu,
            ..Default::default()
        })
    };
    let original = relay("acme", 10);
    let id = original.id();
    let ts = original.ts();
    let same_id_other_project = relay("globex", 0).with_id(id).with_ts(ts);
    write_part(&root, "a", std::slice::from_ref(&original));
    write_part(&root, "b", &[same_id_other_project]);
    let o = usage(dir.path(), &["report", "--dir", &root.display().to_string()]);
    let (report, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        total_line(&report)[..2],
        [2, 10],
        "both projects' events count: {report}"
    );
    assert!(!report.contains("WARNING"), "{report}");
    // The same id in the same project with other content: counted once, flagged.
    write_part(&root, "c", &[relay("acme", 99).with_id(id).with_ts(ts)]);
    let o = usage(dir.path(), &["report", "--dir", &root.display().to_string()]);
    let (report, _) = text(&o);
    assert_eq!(total_line(&report)[0], 2, "{report}");
    assert!(report.contains("WARNING: 1 of them differ"), "{report}");
}

#[test]
fn pump_accounts_for_every_event_and_matches_the_data() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("usage.toml"),
        "[pipeline]\nflush_interval = \"50ms\"\n[exporters.local]\ntype = \"file\"\npath = \"out\"\ncompression = \"gzip\"\n",
    )
    .unwrap();
    let o = usage(dir.path(), &["pump", "--count", "20000", "--json", "--ids", "ids.txt"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["complete"], true);
    assert_eq!(v["exporters"][0]["delivered"], 20000);
    let ids = std::fs::read_to_string(dir.path().join("ids.txt")).unwrap();
    let mut want: Vec<&str> = ids.lines().collect();
    want.sort();
    let mut got = Vec::new();
    let mut cu_by_project = std::collections::BTreeMap::<String, u64>::new();
    usage_file::read::scan(&dir.path().join("out"), &Default::default(), |e| {
        got.push(e.id().to_string());
        if let (Some(usage_core::Value::Str(p)), Some(usage_core::Value::U64(c))) = (e.field("project"), e.field("cu"))
        {
            *cu_by_project.entry(p.to_string()).or_default() += c;
        }
    })
    .unwrap();
    got.sort();
    assert_eq!(got, want, "every id once");
    for (project, totals) in v["projects"].as_object().unwrap() {
        assert_eq!(totals["cu"].as_u64(), cu_by_project.get(project).copied(), "{project}");
    }
}

/// `usage pump --count 100` into a file exporter that cannot write (its directory's
/// place is taken by a file), with `extra` config sections.
fn pump_into_a_broken_exporter(dir: &Path, extra: &str) -> Output {
    std::fs::write(dir.join("blocker"), b"a file where a directory must go").unwrap();
    std::fs::write(
        dir.join("bad.toml"),
        format!(
            "[pipeline]\nretry_base = \"10ms\"\nretry_max = \"50ms\"\n{extra}\
             [exporters.local]\ntype = \"file\"\npath = \"blocker/sub\"\n"
        ),
    )
    .unwrap();
    usage(
        dir,
        &["pump", "--config", "bad.toml", "--count", "100", "--timeout", "1s"],
    )
}

#[test]
fn pump_exits_non_zero_when_events_are_not_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let o = pump_into_a_broken_exporter(dir.path(), "");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        err.contains("not delivered") && err.contains("local: delivered 0, pending 100"),
        "{err}"
    );
    assert!(out.contains("last error: writing parts under blocker/sub"), "{out}");
}

/// With a spool, undelivered events are not lost: pump says they wait in the spool,
/// shows them per exporter, and exits 0 (review: it printed "all exporters done").
#[test]
fn pump_shows_what_waits_in_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let o = pump_into_a_broken_exporter(dir.path(), "[spool]\npath = \"spool\"\n");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("with 100 deliveries still in the spool"), "{out}");
    let row = out.lines().find(|l| l.starts_with("local")).expect("a row for local");
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        (cols[2], cols[3], cols[4]),
        ("0", "100", "0"),
        "delivered, spooled, pending: {row}"
    );
}

#[test]
fn bad_config_and_flags_are_one_line_errors_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), "[pipeline]\nqueue_capacity = \"lots\"\n").unwrap();
    std::fs::write(dir.path().join("b.toml"), "[exporters.main]\ntype = \"kafkaa\"\n").unwrap();
    for (args, needle) in [
        (
            &["check", "--config", "a.toml"][..],
            "pipeline.queue_capacity: invalid type: found string \"lots\"",
        ),
        (
            &["check", "--config", "b.toml"][..],
            "exporters.main.type: unknown exporter type `kafkaa`; registered types: clickhouse, file, http, kafka, otlp, s3; did you mean `kafka`?",
        ),
        (
            &["check", "--config", "missing.toml"][..],
            "config file missing.toml does not exist",
        ),
        (&["pump", "--count", "1", "--kind", "nope"][..], "--kind nope"),
        (&["report", "--from", "yesterday"][..], "invalid time \"yesterday\""),
        (&["report", "--dir", "nowhere"][..], "nowhere is not a directory"),
        (&["frobnicate"][..], "unrecognized subcommand"),
    ] {
        let o = usage(dir.path(), args);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {out}{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
    }
}

#[test]
fn check_lists_types_instances_and_healthchecks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("usage.toml"),
        "[exporters.local]\ntype = \"file\"\nevents = [\"relay_usage\"]\n",
    )
    .unwrap();
    let o = usage(dir.path(), &["check"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("file         NDJSON parts"), "{out}");
    assert!(
        out.contains("local        type file       events: relay_usage"),
        "{out}"
    );
    assert!(out.contains("local        ok"), "{out}");
}

#[test]
fn spool_inspect_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("usage.toml"),
        "[pipeline]\nflush_interval = \"50ms\"\n[spool]\npath = \"spool\"\nfsync = \"interval:50ms\"\n\
         [exporters.local]\ntype = \"file\"\npath = \"out\"\n\
         [exporters.copy]\ntype = \"file\"\npath = \"copy\"\nenabled = false\n",
    )
    .unwrap();
    let o = usage(dir.path(), &["pump", "--count", "3000", "--ids", "ids.txt"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let o = usage(dir.path(), &["spool", "inspect", "spool"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("events: 3000"), "{out}");
    let local = out
        .lines()
        .find(|l| l.trim_start().starts_with("local "))
        .expect("local's cursor");
    assert_eq!(
        local.split_whitespace().collect::<Vec<_>>(),
        ["local", "3000", "0"],
        "{out}"
    );
    let o = usage(dir.path(), &["spool", "replay", "spool", "--exporter", "copy"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("replayed 3000 events to copy"), "{out}");
    let mut ids: Vec<String> = Vec::new();
    usage_file::read::scan(&dir.path().join("copy"), &Default::default(), |e| {
        ids.push(e.id().to_string())
    })
    .unwrap();
    ids.sort();
    let mut want: Vec<String> = std::fs::read_to_string(dir.path().join("ids.txt"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    want.sort();
    assert!(
        ids == want,
        "replay sends exactly the spooled events ({} vs {})",
        ids.len(),
        want.len()
    );
    let o = usage(dir.path(), &["spool", "replay", "spool", "--exporter", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o)
        .1
        .contains("no [exporters.nope] in the config (configured: copy, local)"));
    let o = usage(dir.path(), &["spool", "inspect", "out"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("not a spool"));
}

#[test]
fn schema_prints_fields_and_athena_ddl() {
    let dir = tempfile::tempdir().unwrap();
    let o = usage(dir.path(), &["schema", "--kind", "relay_usage"]);
    assert!(o.status.success());
    assert!(text(&o).0.contains("cu                           u64"));
    let o = usage(
        dir.path(),
        &[
            "schema",
            "athena",
            "--kind",
            "relay_usage",
            "--location",
            "s3://b/relay_usage",
        ],
    );
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert!(
        out.starts_with("CREATE EXTERNAL TABLE IF NOT EXISTS `relay_usage`"),
        "{out}"
    );
    assert!(out.contains("'projection.enabled' = 'true'"));
    let o = usage(dir.path(), &["schema", "athena", "--kind", "relay_usage"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("athena needs --location"));
    let o = usage(dir.path(), &["schema", "clickhouse", "--kind", "relay_usage"]);
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert!(
        out.contains("ENGINE = ReplacingMergeTree()") && out.contains("`ts` DateTime64(6, 'UTC')"),
        "{out}"
    );
    assert!(out.contains("ORDER BY (project, chain, ts, id)"), "{out}");
    let o = usage(
        dir.path(),
        &["schema", "clickhouse", "--kind", "relay_usage", "--legacy"],
    );
    assert!(text(&o).0.contains("`ts_us` UInt64"));
    let o = usage(dir.path(), &["schema", "--kind", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o)
        .1
        .contains("unknown kind `nope`; known kinds: network_event, optimizer_qos, relay_usage"));
}
