//! A spool on a disk that fills up: what could not be written is refused and counted,
//! never acknowledged and never delivered; once space returns, writing resumes.
//!
//! Uses a real tiny tmpfs, so it needs root (as CI has); elsewhere it says so and
//! does nothing.

mod common;

use common::Recorder;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use usage_core::{AcceptError, Event, EventId, Pipeline, RelayUsage, SpoolConfig};

struct Tmpfs(PathBuf);

impl Tmpfs {
    /// A tmpfs of `size` mounted at `dir`, or `None` when not running as root.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let uid = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!("not root: the disk-full test needs a tmpfs mount and is skipped");
            return None;
        }
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount a tmpfs at {}", dir.display());
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn batch(from: u64, n: u64) -> Vec<Event> {
    (from..from + n)
        .map(|cu| {
            Event::new(RelayUsage {
                project: format!("project-{cu:032}").as_str().into(),
                cu,
                ..Default::default()
            })
        })
        .collect()
}

fn pipeline(spool_dir: &Path, data_dir: &Path, rec: &Recorder) -> Pipeline {
    Pipeline::builder()
        .configure(|c| {
            c.flush_interval = Duration::from_millis(20);
            c.data_dir = data_dir.to_path_buf();
        })
        .spool(SpoolConfig {
            segment_bytes: 32 << 10,
            ..SpoolConfig::new(spool_dir)
        })
        .exporter("rec", rec.clone())
        .build()
        .unwrap()
}

async fn send(
    p: &Pipeline,
    events: Vec<Event>,
    attempted: &mut Vec<EventId>,
) -> (Vec<EventId>, Result<(), AcceptError>) {
    let ids: Vec<EventId> = events.iter().map(Event::id).collect();
    attempted.extend(&ids);
    (ids, p.accept(events, Duration::from_secs(5)).await)
}

/// Writes until the filesystem refuses: the disk is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_what_it_cannot_write_and_recovers_when_space_returns() {
    let root = tempfile::tempdir().unwrap();
    let mnt = root.path().join("disk");
    std::fs::create_dir_all(&mnt).unwrap();
    let Some(_disk) = Tmpfs::mount(&mnt, "1m") else {
        return;
    };
    let spool_dir = mnt.join("spool");
    let rec = Recorder::new();
    let p = pipeline(&spool_dir, &root.path().join("data"), &rec);

    let mut attempted: Vec<EventId> = Vec::new();
    let mut acknowledged: HashSet<EventId> = HashSet::new();
    let mut refused_requests = 0;
    let mut next = 0u64;

    // Room for some: every acknowledged request is on disk.
    for _ in 0..5 {
        let (ids, r) = send(&p, batch(next, 20), &mut attempted).await;
        next += 20;
        assert!(r.is_ok(), "{r:?}");
        acknowledged.extend(ids);
    }
    // The disk fills up: requests are refused as not durable, none acknowledged.
    fill(&mnt.join("filler"));
    for _ in 0..30 {
        let (ids, r) = send(&p, batch(next, 20), &mut attempted).await;
        next += 20;
        match r {
            Ok(()) => acknowledged.extend(ids),
            Err(AcceptError::NotDurable) => refused_requests += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(
        refused_requests >= 25,
        "{refused_requests} of 30 refused on a full disk"
    );
    assert!(p.stats().dropped.spool_error > 0);
    // Space returns: the same spool writes again, without a restart.
    std::fs::remove_file(mnt.join("filler")).unwrap();
    for _ in 0..5 {
        let (ids, r) = send(&p, batch(next, 20), &mut attempted).await;
        next += 20;
        assert!(r.is_ok(), "after space returned: {r:?}");
        acknowledged.extend(ids);
    }
    let report = p.shutdown(Duration::from_secs(10)).await;
    let report = match report {
        Ok(r) => r,
        Err(e) => e.0,
    };

    let delivered = rec.ids();
    let unique: HashSet<EventId> = delivered.iter().copied().collect();
    assert_eq!(unique.len(), delivered.len(), "nothing delivered twice");
    assert!(acknowledged.is_subset(&unique), "every acknowledged event is delivered");
    let attempted_set: HashSet<EventId> = attempted.iter().copied().collect();
    assert!(unique.is_subset(&attempted_set));
    // What was not delivered is exactly what was refused and counted.
    let refused = report.dropped_at_ingest.spool_error;
    assert_eq!(attempted.len() as u64, unique.len() as u64 + refused, "{report}");
    assert!(refused >= 25 * 20, "{refused} events refused");

    // A restart finds a clean spool: nothing damaged, nothing sent again.
    let rec2 = Recorder::new();
    let p2 = pipeline(&spool_dir, &root.path().join("data"), &rec2);
    let report2 = p2.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(rec2.count(), 0, "{report2}");
    let look = usage_core::inspect_spool(&spool_dir).unwrap();
    assert_eq!((look.quarantined_bytes, look.damaged_events), (0, 0));
}
