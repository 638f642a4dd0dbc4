//! Issue 24, against moto with IAM authentication on (started by `cargo xtask
//! e2e`): it checks every request's SigV4 signature and enforces `If-None-Match`.
//! - the conformance suite, with the stop/restart row;
//! - a wrong secret pauses the exporter (SignatureDoesNotMatch), nothing sent;
//! - a replayed batch is a no-op, a foreign object at a batch's key is not
//!   overwritten (the batch is refused), for single and multipart uploads;
//! - DuckDB reads the objects back as Athena would: the same count and SUM(cu) per
//!   project, every event in its event-time hour, the columns `usage schema athena`
//!   declares.

use super::{runtime, Outage, S3Store};
use aws_sdk_s3::primitives::ByteStream;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use usage_conformance::{bench_relay, env_addr, record, record_json, run, scratch_dir, varied_relay, TcpProxy};
use usage_core::{
    Batch, Event, EventKind, ExportError, Exporter, ExporterSection, RelayUsage, Resource, Timestamp, Value,
};
use usage_s3::{S3Config, S3Exporter};

/// The signature-checking moto, or `None` under `--compose` (which has MinIO and
/// no such moto): those runs skip these tests.
fn signed_moto() -> Option<String> {
    if std::env::var("USAGE_E2E_MOTO_SIGNED").is_err() && std::env::var("USAGE_E2E_COMPOSE").is_ok() {
        println!("skipped: no signature-checking moto under --compose");
        return None;
    }
    Some(env_addr("USAGE_E2E_MOTO_SIGNED"))
}

fn keys() -> (String, String) {
    let k = env_addr("USAGE_E2E_MOTO_SIGNED_KEYS");
    let (a, s) = k.split_once(':').expect("AK:SK");
    (a.to_string(), s.to_string())
}

fn store(bucket: &str, outage: Outage, endpoint: String) -> S3Store {
    let s = S3Store {
        name: "moto, SigV4 checked".into(),
        endpoint,
        bucket: bucket.into(),
        keys: keys(),
        outage,
        rt: runtime(),
    };
    s.create_bucket();
    s
}

/// A bucket of this test run's own (moto keeps earlier runs' buckets).
fn direct(name: &str, upstream: &str) -> S3Store {
    store(
        &format!("{name}-{}", std::process::id()),
        Outage::None,
        format!("http://{upstream}"),
    )
}

fn exporter(s: &S3Store, secret: &str, extra: &[(&str, &str)]) -> S3Exporter {
    let mut section = ExporterSection::new("archive", "s3")
        .set("bucket", s.bucket.as_str())
        .set("endpoint", s.endpoint.as_str())
        .set("access_key_id", s.keys.0.as_str())
        .set("secret_access_key", secret);
    for (k, v) in extra {
        section = section.set(k, *v);
    }
    let cfg: S3Config = section.parse().expect("config");
    S3Exporter::new(&cfg, "exporters.archive").expect("exporter")
}

fn batch(n: u64, offset: u64) -> Batch {
    let events = (0..n).map(|i| Event::new(bench_relay(offset + i))).collect();
    Batch::from_events(events, Arc::new(Resource::default()))
}

/// Every object under `prefix`: key -> (etag, last modified).
fn objects(s: &S3Store, prefix: &str) -> BTreeMap<String, (String, String)> {
    let c = s.client();
    let (bucket, prefix) = (s.bucket.clone(), prefix.to_string());
    s.rt.block_on(async move {
        let page = c
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .send()
            .await
            .expect("list");
        page.contents()
            .iter()
            .map(|o| {
                let etag = o.e_tag().unwrap_or_default().to_string();
                let at = o.last_modified().map(|t| t.to_string()).unwrap_or_default();
                (o.key().unwrap_or_default().to_string(), (etag, at))
            })
            .collect()
    })
}

fn incomplete_uploads(s: &S3Store) -> usize {
    let c = s.client();
    let bucket = s.bucket.clone();
    s.rt.block_on(async move {
        let l = c
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await
            .expect("list uploads");
        l.uploads().len()
    })
}

#[test]
#[ignore = "e2e: run by `cargo xtask e2e`"]
fn s3_exporter_passes_the_conformance_suite_against_moto_checking_signatures() {
    usage_core::link_exporters!(usage_s3);
    let Some(upstream) = signed_moto() else { return };
    let upstream = upstream.parse().expect("address");
    let proxy = TcpProxy::start(0, upstream).expect("proxy");
    let endpoint = format!("http://127.0.0.1:{}", proxy.port());
    let mut s = store("usage-conformance-signed", Outage::Proxy(proxy), endpoint);
    let reports =
        run(&mut s, &scratch_dir("conformance-s3-signed"), 3000).unwrap_or_else(|e| panic!("s3/moto signed: {e}"));
    record(&reports);
}

#[test]
#[ignore = "e2e: run by `cargo xtask e2e`"]
fn a_wrong_secret_is_refused_by_signature_and_pauses() {
    let Some(upstream) = signed_moto() else { return };
    let s = direct("usage-signatures", &upstream);
    let e = exporter(&s, "not-the-secret", &[]);
    let err = s.rt.block_on(e.export(&batch(10, 0))).expect_err("refused");
    assert!(matches!(err, ExportError::Paused { .. }), "{err:?}");
    assert!(err.to_string().contains("SignatureDoesNotMatch"), "{err}");
    assert!(objects(&s, "").is_empty(), "nothing stored");
    // The right secret goes through: the refusal was the signature.
    s.rt.block_on(exporter(&s, &s.keys.1, &[]).export(&batch(10, 0)))
        .expect("signed");
    assert!(!objects(&s, "").is_empty());
}

#[test]
#[ignore = "e2e: run by `cargo xtask e2e`"]
fn replays_are_no_ops_and_nothing_is_overwritten() {
    let Some(upstream) = signed_moto() else { return };
    for (name, extra, events) in [
        ("single PUT", vec![], 200u64),
        // Uncompressed, 5 MiB threshold (S3's minimum part): ~7 MB goes multipart.
        (
            "multipart",
            vec![("compression", "none"), ("multipart_threshold", "5MiB")],
            25_000,
        ),
    ] {
        let s = direct(&format!("usage-write-once-{events}"), &upstream);
        let e = exporter(&s, &s.keys.1, &extra);
        let b = batch(events, 0);
        s.rt.block_on(e.export(&b))
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        let first = objects(&s, "");
        assert!(!first.is_empty(), "{name}");
        // Replayed (a crash before the spool recorded it, a lost answer): a no-op.
        s.rt.block_on(e.export(&b))
            .unwrap_or_else(|err| panic!("{name}, replay: {err}"));
        assert_eq!(objects(&s, ""), first, "{name}: the replay rewrote nothing");
        // The store enforces the condition (so the no-op above is not luck).
        let key = first.keys().next().expect("a key").clone();
        let (c, bucket, k) = (s.client(), s.bucket.clone(), key.clone());
        let refused = s.rt.block_on(async move {
            c.put_object()
                .bucket(bucket)
                .key(k)
                .if_none_match("*")
                .body(ByteStream::from(b"other".to_vec()))
                .send()
                .await
        });
        assert!(refused.is_err(), "{name}: moto enforces If-None-Match");
        // Something else holds the key: the batch is refused, the object kept.
        let (c, bucket, k) = (s.client(), s.bucket.clone(), key.clone());
        s.rt.block_on(async move {
            c.put_object()
                .bucket(bucket)
                .key(k)
                .body(ByteStream::from(b"not ours".to_vec()))
                .send()
                .await
        })
        .expect("a foreign object");
        let err = s.rt.block_on(e.export(&b)).expect_err("refused, not overwritten");
        assert!(matches!(err, ExportError::Rejected { .. }), "{name}: {err:?}");
        assert!(err.to_string().contains("not overwritten"), "{name}: {err}");
        let (c, bucket, k) = (s.client(), s.bucket.clone(), key.clone());
        let body = s.rt.block_on(async move {
            let o = c.get_object().bucket(bucket).key(k).send().await.expect("get");
            o.body.collect().await.expect("body").into_bytes()
        });
        assert_eq!(&body[..], b"not ours", "{name}: the foreign object is intact");
        assert_eq!(incomplete_uploads(&s), 0, "{name}: no multipart upload left behind");
        record_json(&serde_json::json!({
            "exporter": "s3", "backend": "moto, SigV4 checked", "step": format!("write once ({name}): replay no-op, no overwrite"),
            "sent": events, "found": events, "unique": events, "duplicates": 0, "lost": 0, "seconds": 0.0,
        }));
    }
}

#[test]
#[ignore = "e2e: run by `cargo xtask e2e`"]
fn duckdb_reads_back_what_athena_would() {
    let Some(upstream) = signed_moto() else { return };
    let s = direct("usage-duckdb", &upstream);
    let e = exporter(&s, &s.keys.1, &[("prefix", "tables/{kind}")]);
    // Six event-time hours, three projects.
    let base = Timestamp::from_micros(1_796_200_000_000_000);
    let sent: Vec<Event> = (0..3000u64)
        .map(|i| Event::new(varied_relay(i)).with_ts(base.plus(Duration::from_secs(i * 7))))
        .collect();
    let mut want: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for ev in &sent {
        let (Some(Value::Str(p)), Some(Value::U64(cu))) = (ev.field("project"), ev.field("cu")) else {
            panic!("project and cu: {ev:?}");
        };
        let w = want.entry(p.to_string()).or_default();
        w.0 += 1;
        w.1 += cu;
    }
    for chunk in sent.chunks(1000) {
        let b = Batch::from_events(chunk.to_vec(), Arc::new(Resource::default()));
        s.rt.block_on(e.export(&b)).expect("exported");
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/duckdb_read.py");
    let out = std::process::Command::new(env_addr("USAGE_E2E_PYTHON"))
        .arg(&script)
        .args([upstream.as_str(), &s.bucket, "tables/relay_usage/**/*.ndjson.gz"])
        .env("USAGE_S3_KEY_ID", &s.keys.0)
        .env("USAGE_S3_SECRET", &s.keys.1)
        .output()
        .expect("run DuckDB");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(got["rows"], sent.len(), "every event read");
    assert_eq!(got["misplaced"], 0, "every event in its event-time hour");
    for (project, (n, cu)) in &want {
        assert_eq!(got["per_project"][project], serde_json::json!([n, cu]), "{project}");
    }
    // The Athena DDL's columns against what DuckDB infers.
    let ddl = usage_s3::athena_ddl(RelayUsage::schema(), "s3://b/tables/relay_usage", None);
    let declared = declared_columns(&ddl);
    let mut compared = 0;
    for col in got["columns"].as_array().expect("columns") {
        let (name, duck) = (col[0].as_str().unwrap_or_default(), col[1].as_str().unwrap_or_default());
        let athena = declared
            .get(name)
            .unwrap_or_else(|| panic!("DuckDB finds `{name}` ({duck}), the DDL does not declare it"));
        let compatible = match athena.as_str() {
            // Text to Athena; DuckDB recognises ts as a timestamp and id as a UUID.
            "string" => ["VARCHAR", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "UUID"].contains(&duck),
            "bigint" => ["BIGINT", "UBIGINT", "INTEGER"].contains(&duck),
            "double" => duck == "DOUBLE",
            "boolean" => duck == "BOOLEAN",
            _ => duck.starts_with("MAP") || duck.starts_with("STRUCT") || duck == "JSON",
        };
        assert!(compatible, "`{name}`: Athena {athena}, DuckDB {duck}");
        compared += 1;
    }
    // Every field is set in these events: DuckDB sees every declared column.
    assert_eq!(
        compared,
        declared.len(),
        "DuckDB: {}; DDL: {declared:?}",
        got["columns"]
    );
    println!("DuckDB columns: {}; declared: {declared:?}", got["columns"]);
    record_json(&serde_json::json!({
        "exporter": "s3", "backend": "moto, read by DuckDB 1.5.5", "step": format!("athena layout, {compared} columns match the DDL"),
        "sent": sent.len(), "found": got["rows"], "unique": got["rows"], "duplicates": 0, "lost": 0, "seconds": 0.0,
    }));
}

/// Every `` `name` type `` the DDL declares, partition keys included.
fn declared_columns(ddl: &str) -> BTreeMap<String, String> {
    let body = ddl.split("ROW FORMAT").next().unwrap_or_default();
    let mut out = BTreeMap::new();
    let mut rest = body;
    while let Some(open) = rest.find('`') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('`') else { break };
        let name = &after[..close];
        let ty: String = after[close + 1..]
            .trim_start()
            .chars()
            .take_while(|c| !matches!(c, ',' | ')' | '\n'))
            .collect();
        // The table's own name is followed by "(", not a type.
        if ty.starts_with(|c: char| c.is_ascii_alphabetic()) {
            out.insert(name.to_string(), ty.trim().to_string());
        }
        rest = &after[close + 1..];
    }
    out
}
