//! `target/bench/report.md` from the JSON report.

use serde_json::Value;
use std::fmt::Write;

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn ns(report: &Value, group: &str, id: &str) -> f64 {
    f(&report[group][id]["median_ns"])
}

pub fn markdown(r: &Value) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# usage benchmark report\n");
    let _ = writeln!(
        md,
        "{} on {} ({} cores, {}). Every figure is the median of {} runs; end-to-end and collector runs move {} events.\n",
        r["date"].as_str().unwrap_or(""),
        r["machine"]["cpu"].as_str().unwrap_or(""),
        r["machine"]["cores"],
        r["machine"]["memory"].as_str().unwrap_or(""),
        r["runs_per_figure"],
        r["events_per_run"]
    );
    let _ = writeln!(md, "Versions: {}\n", r["versions"]);
    if r["emit"].is_null() {
        let _ = writeln!(
            md,
            "## 1. Emit cost

Skipped (`--quick`).
"
        );
    } else {
        emit_section(&mut md, r);
    }
    collector_section(&mut md, r);
    exporters_section(&mut md, r);
    if r["spool"].is_null() {
        let _ = writeln!(md, "\n## 4. Spool\n\nSkipped (`--quick`).\n");
    } else {
        spool_section(&mut md, r);
    }
    overload_section(&mut md, r);
    md
}

fn emit_section(md: &mut String, r: &Value) {
    let (u1, u2) = (ns(r, "emit", "usage_1_thread"), ns(r, "emit", "usage_2_thread"));
    let (o1, o2) = (
        ns(r, "emit", "otel_sdk_batch_1_thread"),
        ns(r, "emit", "otel_sdk_batch_2_thread"),
    );
    let _ = writeln!(md, "## 1. Emit cost (15-field relay_usage, ns per event)\n");
    let _ = writeln!(
        md,
        "| threads | usage | opentelemetry_sdk BatchLogProcessor | ratio (goal >= 20x) |\n|---|---|---|---|"
    );
    let _ = writeln!(md, "| 1 | {u1:.0} | {o1:.0} | {:.1}x |", o1 / u1);
    let _ = writeln!(md, "| 2 | {u2:.0} | {o2:.0} | {:.1}x |", o2 / u2);
    let _ = writeln!(md, "\nNo-op sink: {:.2} ns.\n", ns(r, "emit", "noop_sink"));
    real_values_section(md, r);
}

/// Lava's real values (500 32-char projects, 44-char providers, origins), warm and paced.
fn real_values_section(md: &mut String, r: &Value) {
    let (u1, u2) = (
        ns(r, "emit", "usage_real_1_thread"),
        ns(r, "emit", "usage_real_2_thread"),
    );
    let (o1, o2) = (
        ns(r, "emit", "otel_sdk_real_1_thread"),
        ns(r, "emit", "otel_sdk_real_2_thread"),
    );
    let _ = writeln!(md, "### With Lava's real values (ns per event)\n");
    let _ = writeln!(
        md,
        "| run | threads | usage | opentelemetry_sdk | ratio (goal >= 10x) | usage dropped | sdk dropped |\n|---|---|---|---|---|---|---|"
    );
    let _ = writeln!(
        md,
        "| warm queue (goal <= 50 ns) | 1 | {u1:.0} | {o1:.0} | {:.1}x | | |",
        o1 / u1
    );
    let _ = writeln!(md, "| warm queue | 2 | {u2:.0} | {o2:.0} | {:.1}x | | |", o2 / u2);
    let paced = &r["emit"]["paced"];
    for threads in [1, 2] {
        let u = &paced[format!("usage_real_paced_{threads}_thread")];
        let o = &paced[format!("otel_sdk_real_paced_{threads}_thread")];
        let _ = writeln!(
            md,
            "| paced, 200k/s per thread in groups of 64 (goal <= 100 ns, 0 dropped) | {threads} | {:.0} | {:.0} | {:.1}x | {} | {} |",
            f(&u["median_ns"]),
            f(&o["median_ns"]),
            f(&o["median_ns"]) / f(&u["median_ns"]),
            u["max_dropped"],
            o["max_dropped"]
        );
    }
    let p1 = f(&paced["usage_real_paced_1_thread"]["median_ns"]);
    let p2 = f(&paced["usage_real_paced_2_thread"]["median_ns"]);
    let _ = writeln!(
        md,
        "\n2 threads vs 1 (goal <= 1.2x): warm {:.2}x, paced {:.2}x.\n",
        u2 / u1,
        p2 / p1
    );
}

fn collector_section(md: &mut String, r: &Value) {
    let _ = writeln!(md, "## 2. Collector role: OTLP/HTTP in, Kafka (tansu, acks=all) out\n");
    let _ = writeln!(
        md,
        "| collector | events/s | events per CPU-second | CPU s per 1M | peak RSS MiB | lost |\n|---|---|---|---|---|---|"
    );
    for (name, label) in [
        (
            "usage_gateway",
            "usage gateway (spool, fsync=batch), one message per event",
        ),
        (
            "usage_gateway_packed",
            "usage gateway (spool, fsync=batch), 1,000 events per message",
        ),
        ("rotel", "rotel (kafka exporter), one message per OTLP batch"),
    ] {
        let c = &r["collector"][name];
        let _ = writeln!(
            md,
            "| {label} | {:.0} | {:.0} | {:.2} | {:.0} | {} |",
            f(&c["events_per_second"]),
            f(&c["events_per_cpu_second"]),
            f(&c["cpu_seconds_per_million"]),
            f(&c["peak_rss_kib"]) / 1024.0,
            c["lost"]
        );
    }
    let rotel = f(&r["collector"]["rotel"]["events_per_cpu_second"]);
    let ratio = f(&r["collector"]["usage_gateway"]["events_per_cpu_second"]) / rotel;
    let packed = f(&r["collector"]["usage_gateway_packed"]["events_per_cpu_second"]) / rotel;
    let _ = writeln!(
        md,
        "\nEvents per CPU-second, usage gateway / rotel: **{packed:.2}x** packed as rotel packs, \
         **{ratio:.2}x** with one message per event (goal >= 2x)."
    );
    let _ = writeln!(
        md,
        "Both gateway rows validate every record against its kind's schema and spool it durably before \
         answering. One message per event is keyed with an `event-id` header, consumable one by one; \
         packed, each message is NDJSON of up to 1,000 events (`events_per_message`), like rotel's one \
         OTLP batch per message ({} messages for {} events here). CPU is the collector process's own \
         (user + system) from start of load to last event consumed back.\n",
        r["collector"]["rotel"]["runs"][0]["count"]["messages"], r["events_per_run"]
    );
}

fn exporters_section(md: &mut String, r: &Value) {
    let _ = writeln!(md, "## 3. Per exporter, end to end (emit -> backend acknowledged)\n");
    let _ = writeln!(
        md,
        "| exporter | backend | events/s | CPU s per 1M (sending process) |\n|---|---|---|---|"
    );
    for (name, backend) in [
        ("file", "local disk"),
        ("kafka", "tansu"),
        ("kafka_packed", "tansu, 1,000 events per message"),
        ("s3", "moto"),
        ("clickhouse", "clickhouse 18.16 (server)"),
        ("clickhouse_current", "clickhouse 26.9 (chdb engine, our HTTP front)"),
        ("http", "usage gateway -> file"),
        ("otlp", "rotel (blackhole)"),
    ] {
        let e = &r["exporters"][name];
        let _ = writeln!(
            md,
            "| {} | {backend} | {:.0} | {:.2} |",
            name.trim_end_matches("_packed").trim_end_matches("_current"),
            f(&e["events_per_second"]),
            f(&e["cpu_seconds_per_million"])
        );
    }
}

fn spool_section(md: &mut String, r: &Value) {
    let _ = writeln!(md, "\n## 4. Spool\n");
    let _ = writeln!(md, "| fsync | append events/s |\n|---|---|");
    for (id, label) in [
        ("append_batch", "batch"),
        ("append_interval_100ms", "interval 100ms"),
        ("append_never", "never"),
    ] {
        let _ = writeln!(md, "| {label} | {:.0} |", 1e9 / ns(r, "spool", id));
    }
    let _ = writeln!(
        md,
        "\nRecovery of a spool holding 1M events: {:.0} ms.\n",
        ns(r, "spool", "recover_1M") / 1e6
    );
}

fn overload_section(md: &mut String, r: &Value) {
    let o = &r["overload"];
    let _ = writeln!(md, "## 5. Memory under overload\n");
    let _ = writeln!(
        md,
        "2M events emitted into an exporter that never acknowledges, queues bounded at 64 MiB each \
         (ingest + exporter = {:.0} MiB): peak RSS grew by **{:.1} MiB** over the idle pipeline; the rest was \
         dropped and counted.",
        f(&o["bound_bytes"]) / 1048576.0,
        f(&o["growth_kib"]) / 1024.0
    );
}
