//! `usage demo`: a simulated RPC service emitting through the configured pipeline.

use crate::progress::Progress;
use crate::synth::Synth;
use crate::{load_config, Failure, Outcome};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use usage_core::{Event, Pipeline};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Request-handling threads.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Total relays per second across threads (0: as fast as possible).
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
}

pub(crate) fn run(args: Args, config: Option<&PathBuf>) -> Outcome {
    if args.threads == 0 {
        return Err(Failure::Usage("--threads must be at least 1".into()));
    }
    let config = load_config(config)?;
    let pipeline = Pipeline::from_config(&config)?;
    eprintln!(
        "demo: {} threads for {}s at {} relays/s -> exporters: {}",
        args.threads,
        args.seconds,
        if args.rate == 0 {
            "max".to_string()
        } else {
            args.rate.to_string()
        },
        pipeline.exporter_names().join(", ")
    );
    let stop = Arc::new(AtomicBool::new(false));
    let per_thread = args.rate / args.threads as u64;
    let workers: Vec<_> = (0..args.threads)
        .map(|t| {
            let (sink, stop) = (pipeline.sink(), stop.clone());
            std::thread::spawn(move || {
                let mut synth = Synth::new(0x9e37_79b9 + t as u64);
                let start = Instant::now();
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Pace in 1 ms steps: emit what is due, then sleep.
                    let due = if per_thread == 0 {
                        sent + 1000
                    } else {
                        (start.elapsed().as_secs_f64() * per_thread as f64) as u64
                    };
                    while sent < due {
                        sink.emit(synth.relay());
                        sent += 1;
                    }
                    if per_thread > 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        })
        .collect();

    let mut progress = Progress::new();
    let mut synth = Synth::new(7);
    let started = Instant::now();
    let mut next_tick = Instant::now();
    let mut epoch = 1;
    crate::interrupt::install();
    while started.elapsed() < Duration::from_secs(args.seconds) && !crate::interrupt::requested() {
        if Instant::now() >= next_tick {
            for q in synth.qos_tick(epoch) {
                pipeline.sink().emit(Event::new(q));
            }
            epoch += 1;
            next_tick += Duration::from_secs(1);
        }
        progress.tick(&pipeline.stats());
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    progress.tick(&pipeline.stats());
    progress.finish();
    let result = pipeline.shutdown_blocking(Duration::from_secs(60));
    let stats = pipeline.stats();
    println!(
        "emitted {} events in {:.1}s ({} dropped at ingest)",
        stats.emitted,
        started.elapsed().as_secs_f64(),
        stats.dropped.total()
    );
    crate::pump::print_exporters(&stats, result.as_ref().unwrap_or_else(|e| e.report()));
    let file_dirs: Vec<String> = config
        .exporters
        .iter()
        .filter(|e| e.type_name == "file")
        .map(|e| {
            e.settings
                .get("path")
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| config.pipeline.data_dir.display().to_string())
        })
        .collect();
    let dirs = if config.exporters.is_empty() {
        vec![config.pipeline.data_dir.display().to_string()]
    } else {
        file_dirs
    };
    for dir in dirs {
        println!("data: {dir}  (billing totals: usage report --dir {dir})");
    }
    match result {
        Ok(_) => Ok(()),
        Err(e) => Err(Failure::Failed(e.to_string())),
    }
}
