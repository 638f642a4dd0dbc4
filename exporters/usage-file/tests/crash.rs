//! Crash safety: a child process emits through the spool into the `file` exporter
//! and is killed with SIGKILL at random moments, several times, then restarted.
//! Every event the spool had durably accepted before each kill must be on disk
//! afterwards; the only duplicates are re-sends of the same id.
//!
//! Segments are tiny, so kills land in segment rolls, seals and deletions of
//! delivered segments; some rounds start with junk after a sealed segment and are
//! killed within milliseconds, inside the recovery that quarantines it and rewrites
//! the segment.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use usage_core::{Event, Pipeline, RelayUsage, SpoolConfig, UsageConfig};

fn pipeline(dir: &std::path::Path) -> Pipeline {
    usage_core::link_exporters!(usage_file);
    let mut cfg = UsageConfig::from_toml(&format!(
        "[pipeline]\nflush_interval = \"100ms\"\ndata_dir = {:?}\n\
         [exporters.out]\ntype = \"file\"\npath = {:?}\nbatch_max_events = 500\n",
        dir.join("data").display().to_string(),
        dir.join("out").display().to_string()
    ))
    .unwrap();
    cfg.spool = Some(SpoolConfig {
        segment_bytes: 4096,
        ..SpoolConfig::new(dir.join("spool"))
    });
    Pipeline::from_config(&cfg).unwrap()
}

/// The child: runs only when the parent sets `USAGE_CRASH_DIR`.
#[test]
#[ignore = "child process of sigkill_at_random_moments_loses_nothing_durable"]
fn crash_child() {
    let Ok(dir) = std::env::var("USAGE_CRASH_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let p = pipeline(&dir);
    let start_seq = p.stats().spool.unwrap().next_seq;
    let mut out = std::io::stdout().lock();
    // libtest has printed "test crash_child ... " without a newline: end that line.
    writeln!(out).unwrap();
    if std::env::var("USAGE_CRASH_FINAL").is_ok() {
        let r = p.shutdown_blocking(Duration::from_secs(60));
        writeln!(out, "DONE {}", r.is_ok()).unwrap();
        return;
    }
    let sink = p.sink();
    let mut emitted = 0u64;
    loop {
        for _ in 0..200 {
            let e = Event::new(RelayUsage {
                project: "crash".into(),
                cu: emitted,
                ..Default::default()
            });
            writeln!(out, "EMIT {}", e.id()).unwrap();
            sink.emit(e);
            emitted += 1;
        }
        out.flush().unwrap();
        std::thread::sleep(Duration::from_millis(3));
        // Events below the spool's committed end were appended and fsynced.
        let durable = p.stats().spool.unwrap().next_seq - start_seq;
        writeln!(out, "DURABLE {durable}").unwrap();
        out.flush().unwrap();
    }
}

/// Junk after the last record of the oldest segment that is not the newest: the
/// next start quarantines it and rewrites that segment.
fn append_junk_to_a_sealed_segment(spool: &std::path::Path) {
    let mut segments: Vec<_> = std::fs::read_dir(spool.join("segments"))
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    if segments.len() >= 2 {
        let mut f = std::fs::OpenOptions::new().append(true).open(&segments[0]).unwrap();
        f.write_all(&[0x5a; 100]).unwrap();
    }
}

fn spawn_child(dir: &std::path::Path, final_run: bool) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("USAGE_CRASH_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if final_run {
        cmd.env("USAGE_CRASH_FINAL", "1");
    }
    cmd.spawn().unwrap()
}

#[test]
fn sigkill_at_random_moments_loses_nothing_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut durable: Vec<String> = Vec::new();
    let mut emitted: HashSet<String> = HashSet::new();
    let mut rng = Instant::now().elapsed().as_nanos() as u64 | 1;
    for round in 0..9 {
        let early = round % 3 == 2;
        if early {
            append_junk_to_a_sealed_segment(&dir.path().join("spool"));
        }
        let mut child = spawn_child(dir.path(), false);
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut ids = Vec::new();
            let mut durable = 0usize;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(id) = line.strip_prefix("EMIT ") {
                    ids.push(id.to_string());
                } else if let Some(n) = line.strip_prefix("DURABLE ") {
                    durable = n.parse().unwrap();
                }
            }
            (ids, durable)
        });
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let life = Duration::from_millis(if early { 5 + rng % 60 } else { 300 + rng % 900 });
        std::thread::sleep(life);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let (ids, n) = reader.join().unwrap();
        assert!(
            (early || n > 0) && n <= ids.len(),
            "round {round}: durable {n} of {} emitted",
            ids.len()
        );
        durable.extend(ids[..n].iter().cloned());
        emitted.extend(ids);
    }
    // A clean run delivers what the killed ones left in the spool.
    let mut child = spawn_child(dir.path(), true);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.starts_with("DONE"))
        .for_each(|l| line = l);
    child.wait().unwrap();
    assert_eq!(line, "DONE true");

    let stale: Vec<_> = ["segments", "cursors", "quarantine"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(dir.path().join("spool").join(sub)).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(stale.is_empty(), "temp files left in the spool: {stale:?}");
    let quarantined = std::fs::read_dir(dir.path().join("spool/quarantine")).unwrap().count();
    assert!(quarantined > 0, "the junk rounds never reached recovery");

    let mut found: HashMap<String, usize> = HashMap::new();
    usage_file::read::scan(&dir.path().join("out"), &Default::default(), |e| {
        *found.entry(e.id().to_string()).or_default() += 1;
    })
    .unwrap();
    let lost: Vec<&String> = durable.iter().filter(|id| !found.contains_key(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} durably accepted events lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(3)]
    );
    assert!(
        found.keys().all(|id| emitted.contains(id)),
        "only ids that were emitted"
    );
    let dupes: usize = found.values().filter(|c| **c > 1).count();
    eprintln!(
        "crash test: {} emitted, {} durable, {} found, {} re-sent ids",
        emitted.len(),
        durable.len(),
        found.len(),
        dupes
    );
}
