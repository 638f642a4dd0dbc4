//! Review H1/H2 at the gateway: with its spool on a disk that fills up, a request
//! whose events could not be written gets 503 (never 202/200), counted as
//! `spool_error`; once space returns the same process answers 200 again, and every
//! acknowledged event is delivered.
//!
//! Uses a real tiny tmpfs, so it needs root (as CI has); elsewhere it says so and
//! does nothing.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use usage_core::UsageConfig;
use usage_gateway::Gateway;

struct Tmpfs(PathBuf);

impl Tmpfs {
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

async fn start(dir: &Path, spool: &Path) -> (String, Arc<Gateway>) {
    usage_core::link_exporters!(usage_file);
    let toml = format!(
        "[pipeline]\nflush_interval = \"20ms\"\ndata_dir = {data:?}\n[spool]\npath = {spool:?}\nsegment_bytes = \"32KiB\"\n\
         [gateway]\n[[gateway.keys]]\nkey = \"dd-key\"\nname = \"daydream\"\n\
         [exporters.out]\ntype = \"file\"\npath = {out:?}\n",
        data = dir.join("data").display().to_string(),
        spool = spool.display().to_string(),
        out = dir.join("out").display().to_string(),
    );
    let gw = Gateway::new(&UsageConfig::from_toml(&toml).unwrap()).unwrap();
    let url = format!("http://{}", common::serve(&gw).await);
    (url, gw)
}

/// Posts 20 Daydream events with their own ids; returns the status and the ids.
async fn post(url: &str, first: u64) -> (u16, Vec<String>) {
    let ids: Vec<String> = (first..first + 20)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    let events: Vec<String> = ids
        .iter()
        .map(|id| {
            format!(r#"{{"type":"stream_started","data":{{"session_id":"s-{id}"}},"id":"{id}","timestamp":"1764633600000"}}"#)
        })
        .collect();
    let body = format!(r#"{{"app":"scope","host":"h","events":[{}]}}"#, events.join(","));
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/metrics"))
        .bearer_auth("dd-key")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), ids)
}

fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gets_503_never_200_and_space_returning_gets_200() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let Some(_mounted) = Tmpfs::mount(&disk, "1m") else {
        return;
    };
    let (url, gw) = start(dir.path(), &disk.join("spool")).await;
    let mut acknowledged: HashSet<String> = HashSet::new();
    let mut next = 0;
    let (status, ids) = post(&url, next).await;
    next += 20;
    assert_eq!(status, 200);
    acknowledged.extend(ids);

    fill(&disk.join("filler"));
    let mut refused = 0;
    for _ in 0..20 {
        let (status, ids) = post(&url, next).await;
        next += 20;
        match status {
            200 => acknowledged.extend(ids),
            503 => refused += 1,
            other => panic!("status {other} on a full disk"),
        }
    }
    assert!(refused >= 15, "{refused} of 20 requests refused on a full disk");
    let metrics = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counted = format!("usage_gateway_rejected_requests_total{{reason=\"spool_error\"}} {refused}");
    assert!(metrics.contains(&counted), "{counted} in\n{metrics}");

    std::fs::remove_file(disk.join("filler")).unwrap();
    for _ in 0..3 {
        let (status, ids) = post(&url, next).await;
        next += 20;
        assert_eq!(status, 200, "after space returned");
        acknowledged.extend(ids);
    }
    let _ = gw.pipeline().shutdown(Duration::from_secs(10)).await;
    let mut delivered = HashSet::new();
    usage_file::read::scan(&dir.path().join("out"), &Default::default(), |e| {
        delivered.insert(e.id().to_string());
    })
    .unwrap();
    assert!(
        acknowledged.is_subset(&delivered),
        "every acknowledged event is delivered"
    );
    // A refused request's events are not delivered, except those of its events a
    // commit had already made durable (a retry then repeats their ids, harmlessly).
    let sent = next as usize;
    assert!(delivered.len() <= sent && delivered.len() < acknowledged.len() + refused * 20);
}
