//! One writer per spool (review H3): a second gateway on the same spool refuses to
//! start and names the first; `usage check` and `usage spool inspect` look without
//! changing anything.

use std::path::Path;
use std::process::Command;

mod common;

use common::{free_port, start_gateway};

fn config(dir: &Path, port: u16) -> std::path::PathBuf {
    let path = dir.join(format!("gateway-{port}.toml"));
    std::fs::write(
        &path,
        format!(
            "[pipeline]\ndata_dir = {data:?}\n[spool]\npath = {spool:?}\n[gateway]\nlisten = \"127.0.0.1:{port}\"\n\
             [[gateway.keys]]\nkey = \"k\"\n[exporters.out]\ntype = \"file\"\npath = {out:?}\n",
            data = dir.join("data").display().to_string(),
            spool = dir.join("spool").display().to_string(),
            out = dir.join("out").display().to_string(),
        ),
    )
    .unwrap();
    path
}

fn usage(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_usage")).args(args).output().unwrap()
}

/// Every file under the spool with its size and modification time.
fn snapshot(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    for sub in ["", "segments", "cursors", "quarantine"] {
        for e in std::fs::read_dir(dir.join(sub)).into_iter().flatten().flatten() {
            let m = e.metadata().unwrap();
            if m.is_file() {
                out.push((e.path().display().to_string(), m.len(), m.modified().unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_second_gateway_on_one_spool_refuses_to_start_and_check_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let first_config = config(dir.path(), port);
    let first = start_gateway(&first_config, port);
    let pid = first.0.id();
    let second = usage(&[
        "gateway",
        "--config",
        &config(dir.path(), free_port()).display().to_string(),
    ]);
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("locked by another process (pid {pid})")), "{err}");

    let spool = dir.path().join("spool");
    let before = snapshot(&spool);
    let check = usage(&["check", "--config", &first_config.display().to_string()]);
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(out.contains(&format!("in use by pid {pid}")), "{out}");
    let inspect = usage(&["spool", "inspect", &spool.display().to_string()]);
    let out = String::from_utf8_lossy(&inspect.stdout);
    assert!(out.contains(&format!("writer: pid {pid}")), "{out}");
    assert_eq!(snapshot(&spool), before, "looking changed the spool");
}
