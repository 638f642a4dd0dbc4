//! `target/bench/report.md` from the JSON report.

use serde_json::Value;
use std::fmt::Write;

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn ns(report: &Value, group: &str, id: &str) -> f64 {
    f(&report[group][id]["median_ns"])
}

/// " (lo-hi)" of a figure's runs, or nothing for a single run.
fn range(values: impl Iterator<Item = f64>, digits: usize) -> String {
    let values: Vec<f64> = values.collect();
    match (
        values.iter().copied().reduce(f64::min),
        values.iter().copied().reduce(f64::max),
    ) {
        (Some(lo), Some(hi)) if values.len() > 1 => format!(" ({lo:.digits$}-{hi:.digits$})"),
        _ => String::new(),
    }
}

/// The runs of a criterion figure, in ns.
fn runs_ns(figure: &Value) -> impl Iterator<Item = f64> + '_ {
    figure["runs_ns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
}

/// A criterion figure's median with the spread of its runs: "102 (101-109)".
fn ns_cell(figure: &Value) -> String {
    format!("{:.0}{}", f(&figure["median_ns"]), range(runs_ns(figure), 0))
}

pub fn markdown(r: &Value) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# usage benchmark report\n");
    let _ = writeln!(
        md,
        "{} on {} ({} cores, {}). Every figure is the median of {} runs; end-to-end runs move {} events unless section 3 says otherwise.\n",
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
    if !r["encode"].is_null() {
        encode_section(&mut md, r);
    }
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
    let cell = |id: &str| ns_cell(&r["emit"][id]);
    let _ = writeln!(
        md,
        "| 1 | {} | {} | {:.1}x |",
        cell("usage_1_thread"),
        cell("otel_sdk_batch_1_thread"),
        o1 / u1
    );
    let _ = writeln!(
        md,
        "| 2 | {} | {} | {:.1}x |",
        cell("usage_2_thread"),
        cell("otel_sdk_batch_2_thread"),
        o2 / u2
    );
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
    let cell = |id: &str| ns_cell(&r["emit"][id]);
    let _ = writeln!(
        md,
        "| warm queue (goal <= 50 ns) | 1 | {} | {} | {:.1}x | | |",
        cell("usage_real_1_thread"),
        cell("otel_sdk_real_1_thread"),
        o1 / u1
    );
    let _ = writeln!(
        md,
        "| warm queue | 2 | {} | {} | {:.1}x | | |",
        cell("usage_real_2_thread"),
        cell("otel_sdk_real_2_thread"),
        o2 / u2
    );
    let paced = &r["emit"]["paced"];
    for threads in [1, 2] {
        let u = &paced[format!("usage_real_paced_{threads}_thread")];
        let o = &paced[format!("otel_sdk_real_paced_{threads}_thread")];
        let _ = writeln!(
            md,
            "| paced, 200k/s per thread in groups of 64 (goal <= 100 ns, 0 dropped) | {threads} | {} | {} | {:.1}x | {} | {} |",
            ns_cell(u),
            ns_cell(o),
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

/// "min-max" of field `key` over a figure's runs: the spread beside the median.
fn spread(c: &Value, key: &str, digits: usize) -> String {
    let runs = c["runs"].as_array().into_iter().flatten();
    range(runs.filter_map(|r| r[key].as_f64()), digits)
}

fn collector_section(md: &mut String, r: &Value) {
    let c = &r["collector"];
    let events = c["events_per_run"].as_u64().unwrap_or(0);
    let _ = writeln!(
        md,
        "## 2. Collector role: OTLP/HTTP in, Kafka (tansu, acks=all) out, {events} records per run\n"
    );
    let _ = writeln!(
        md,
        "| collector | CPU s per 1M (goal) | vs rotel | events/s end to end | peak RSS MiB | lost |\n|---|---|---|---|---|---|"
    );
    let rotel_cpu = f(&c["rotel"]["cpu_seconds_per_million"]);
    for (name, label, goal) in [
        (
            "usage_gateway",
            "usage gateway (spool, fsync=batch), one message per event",
            "<= 0.8x",
        ),
        (
            "usage_gateway_bare",
            "usage gateway (spool, fsync=batch), one message per event, no headers (`headers = []`, as rotel's messages)",
            "<= 0.8x",
        ),
        (
            "usage_gateway_packed",
            "usage gateway (spool, fsync=batch), 1,000 events per message by partition, keyed by project",
            "<= 0.5x",
        ),
        (
            "rotel",
            "rotel (kafka exporter), one message per OTLP batch of 1,000",
            "",
        ),
    ] {
        let x = &c[name];
        let cpu = f(&x["cpu_seconds_per_million"]);
        let _ = writeln!(
            md,
            "| {label} | {cpu:.2}{}{} | {:.2}x | {:.0}{} | {:.0} | {} |",
            spread(x, "cpu_seconds_per_million", 2),
            if goal.is_empty() {
                String::new()
            } else {
                format!(" ({goal})")
            },
            cpu / rotel_cpu,
            f(&x["events_per_second"]),
            spread(x, "events_per_second", 0),
            f(&x["peak_rss_kib"]) / 1024.0,
            x["lost"]
        );
    }
    let rotel_rate = f(&c["rotel"]["events_per_second"]);
    let _ = writeln!(
        md,
        "\nCPU per record vs rotel (goals: packed <= 0.5x, one message per event <= 0.8x): **{:.2}x** packed, \
         **{:.2}x** one message per event, **{:.2}x** without headers. End-to-end events/s vs rotel (goal >= 1x): \
         **{:.2}x** packed, **{:.2}x** one message per event, **{:.2}x** without headers.",
        f(&c["usage_gateway_packed"]["cpu_seconds_per_million"]) / rotel_cpu,
        f(&c["usage_gateway"]["cpu_seconds_per_million"]) / rotel_cpu,
        f(&c["usage_gateway_bare"]["cpu_seconds_per_million"]) / rotel_cpu,
        f(&c["usage_gateway_packed"]["events_per_second"]) / rotel_rate,
        f(&c["usage_gateway"]["events_per_second"]) / rotel_rate,
        f(&c["usage_gateway_bare"]["events_per_second"]) / rotel_rate,
    );
    let _ = writeln!(
        md,
        "Records have Lava's values: 500 distinct 32-char projects, 44-char providers, origins. \
         `usage-bench otlp-load` sends OTLP/HTTP protobuf requests of 1,000 records over 4 connections; \
         a fresh tansu per run, the collectors' runs interleaved (each round runs each once, so \
         the machine's drift falls on all alike). The gateway rows validate every record against its kind's schema and \
         spool it durably before answering; rotel answers from memory. One message per event is keyed by \
         event id with `kind` and `event-id` headers (the default), or none (`headers = []`, as rotel's \
         messages have none; the id is then the key and in the value); packed, each message is NDJSON of up to 1,000 events on the \
         partition each project's key picks (`pack_by = \"partition\"`), like rotel's one OTLP batch per \
         message ({} messages here). CPU is the collector process's own (user + system) from start of \
         load to the last record counted back from Kafka by id (`usage-bench kafka-count`, which reads only \
         the ids: the header, the key, a line's `id`, an OTLP record's `event.id`). Spread (min-max of the runs) in brackets.\n",
        c["rotel"]["runs"][0]["count"]["messages"]
    );
}

fn exporters_section(md: &mut String, r: &Value) {
    let _ = writeln!(md, "## 3. Per exporter, end to end (emit -> backend acknowledged)\n");
    let _ = writeln!(
        md,
        "| exporter | backend | events/s | CPU s per 1M (sending process) | anchor events/s | vs anchor |\n|---|---|---|---|---|---|"
    );
    for (name, backend) in [
        ("file", "local disk"),
        ("kafka", "tansu"),
        ("kafka_packed", "tansu, 1,000 events per message"),
        ("s3", "moto"),
        ("clickhouse", "clickhouse 18.16 (server)"),
        (
            "clickhouse_split",
            "clickhouse 18.16 (server), each batch as 2 INSERTs at once",
        ),
        ("clickhouse_current", "clickhouse 26.9 (chdb engine, our HTTP front)"),
        ("http", "usage gateway -> file"),
        ("otlp", "rotel (blackhole)"),
    ] {
        let e = &r["exporters"][name];
        let rate = f(&e["events_per_second"]);
        let anchor = f(&e["anchor_events_per_second"]);
        let (anchor_cell, ratio_cell) = if anchor.is_nan() {
            (String::new(), String::new())
        } else {
            (format!("{anchor:.0}"), format!("{:.2}x", rate / anchor))
        };
        let _ = writeln!(
            md,
            "| {} | {backend} | {rate:.0}{} | {:.2} | {anchor_cell} | {ratio_cell} |",
            name.split('_').next().unwrap_or(name),
            spread(e, "events_per_second", 0),
            f(&e["cpu_seconds_per_million"])
        );
    }
    let _ = writeln!(
        md,
        "\nKafka and ClickHouse rows move 1M events (200k with `--quick`), the others 200k. Kafka's goal: \
         >= 500k events/s with one message per event. ClickHouse's anchor (goal: the exporter >= 0.9x): the rows the exporter wrote, fetched back as \
         RowBinary in blocks of its batch size (100,000) and re-inserted into a copy of the table one block \
         at a time, uncompressed, timed from the first INSERT to the last answer. The exporter's time runs \
         from the first emit to the last acknowledgement; it also sends its blocks uncompressed \
         (`compression = \"none\"`), so both sides send the same bytes; LZ4, the default for real \
         networks, is not measured here (docs/benchmarks.md gives its cost). The exporter sends each batch's \
         block as one INSERT, with two batches in flight (`batches_in_flight`, default 2); the row \
         \"each batch as 2 INSERTs at once\" sets `insert_concurrency = 2`. Each run's tables are dropped once measured, so their \
         background merges do not weigh on the next run.\n"
    );
}

fn spool_section(md: &mut String, r: &Value) {
    let _ = writeln!(md, "\n## 4. Spool\n");
    let _ = writeln!(md, "| fsync | append events/s |\n|---|---|");
    for (id, label) in [
        ("append_batch", "batch"),
        ("append_interval_100ms", "interval 100ms"),
        ("append_never", "never"),
    ] {
        let per_second = range(runs_ns(&r["spool"][id]).map(|ns| 1e9 / ns), 0);
        let _ = writeln!(md, "| {label} | {:.0}{per_second} |", 1e9 / ns(r, "spool", id));
    }
    let _ = writeln!(
        md,
        "\nRecovery of a spool holding 1M events: {:.0} ms.\n",
        ns(r, "spool", "recover_1M") / 1e6
    );
    let replay = runs_ns(&r["spool"]["replay_200k_json"]).map(|ns| ns / 200_000.0);
    let _ = writeln!(
        md,
        "Read-back (an exporter behind the spool, as the gateway's Kafka exporter when HTTP accepts \
         faster than Kafka takes): 200k spooled `relay_usage` events, each with its sender's resource \
         and Lava's values, read and written as JSON lines: {:.0} ns per event{}.\n",
        ns(r, "spool", "replay_200k_json") / 200_000.0,
        range(replay, 0)
    );
}

/// The JSON line every file, S3, Kafka and HTTP export writes, against serde_json.
fn encode_section(md: &mut String, r: &Value) {
    let (ours, serde) = (ns(r, "encode", "usage_json_line"), ns(r, "encode", "serde_json_line"));
    let _ = writeln!(md, "\n## 6. JSON lines (ns per relay_usage event, Lava's values)\n");
    let _ = writeln!(
        md,
        "| usage `json::write_event` | serde_json, derived struct | ratio |\n|---|---|---|\n| {} | {} | {:.2}x |",
        ns_cell(&r["encode"]["usage_json_line"]),
        ns_cell(&r["encode"]["serde_json_line"]),
        serde / ours
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
