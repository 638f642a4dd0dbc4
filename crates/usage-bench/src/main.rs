//! `usage-bench`: the measuring tools `cargo xtask bench` drives. Each command
//! prints one JSON object on stdout.

mod clickhouse_reinsert;
mod e2e;
mod ids;
mod kafka_count;
mod otlp_load;
mod overload;
mod proc;
mod workload;

// jemalloc for Rust and, unprefixed, for librdkafka's C code: librdkafka allocates per
// message and frees on its delivery-report thread, which glibc's arenas make costly
// (docs/operations.md, "Allocator"; the bench's Kafka rows measure a host on it).
#[cfg(all(unix, not(target_os = "macos")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "usage-bench",
    about = "Load generator and measurements for cargo xtask bench"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Emit N relay_usage events through the pipeline in a config file, until delivered.
    E2e {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value_t = 200_000)]
        events: u64,
    },
    /// Send N relay_usage log records as OTLP/HTTP protobuf.
    OtlpLoad {
        /// Full URL, e.g. http://127.0.0.1:4318/v1/logs.
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 200_000)]
        events: u64,
        #[arg(long, default_value_t = 1000)]
        batch: u64,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// `name=value`, repeatable.
        #[arg(long)]
        header: Vec<String>,
        /// Records per second (a steady load); without it, as fast as taken.
        #[arg(long)]
        rate: Option<u64>,
    },
    /// Count the distinct events that arrived on a Kafka topic.
    KafkaCount {
        #[arg(long)]
        brokers: String,
        #[arg(long)]
        topic: String,
        #[arg(long, value_enum)]
        format: kafka_count::Format,
        #[arg(long)]
        expect: u64,
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
    },
    /// Emit far faster than the exporter takes; report peak RSS vs the byte bound.
    Overload {
        #[arg(long, default_value_t = 2_000_000)]
        events: u64,
        #[arg(long, default_value_t = 64 << 20)]
        queue_bytes: u64,
    },
    /// The ClickHouse anchor: re-insert the rows of an exporter run's table as the
    /// same RowBinary, one block of `batch` rows at a time.
    ClickhouseReinsert {
        /// The server's HTTP URL.
        #[arg(long)]
        url: String,
        #[arg(long)]
        table: String,
        #[arg(long, default_value_t = 100_000)]
        batch: u64,
    },
    /// CPU seconds and peak RSS of another process.
    Proc {
        #[arg(long)]
        pid: u32,
    },
}

fn main() {
    usage::link_exporters();
    let result = match Cli::parse().command {
        Command::E2e { config, events } => e2e::run(&config, events),
        Command::OtlpLoad {
            url,
            events,
            batch,
            concurrency,
            header,
            rate,
        } => header
            .iter()
            .map(|h| {
                h.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| format!("--header `{h}`: expected name=value"))
            })
            .collect::<Result<Vec<_>, _>>()
            .and_then(|headers| {
                otlp_load::run(&otlp_load::Load {
                    url,
                    events,
                    batch: batch.max(1),
                    concurrency: concurrency.max(1),
                    headers,
                    rate,
                })
            }),
        Command::KafkaCount {
            brokers,
            topic,
            format,
            expect,
            timeout_secs,
        } => kafka_count::run(&brokers, &topic, format, expect, Duration::from_secs(timeout_secs)),
        Command::Overload { events, queue_bytes } => overload::run(events, queue_bytes),
        Command::ClickhouseReinsert { url, table, batch } => {
            clickhouse_reinsert::run(&clickhouse_reinsert::Reinsert { url, table, batch })
        }
        Command::Proc { pid } => {
            let pid = pid.to_string();
            proc::cpu_seconds(&pid).and_then(|cpu| {
                Ok(serde_json::json!({
                    "cpu_seconds": cpu,
                    "peak_rss_kib": proc::status_kib(&pid, "VmHWM")?,
                }))
            })
        }
    };
    match result {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("usage-bench: {e}");
            std::process::exit(1);
        }
    }
}
