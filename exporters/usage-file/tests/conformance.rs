//! The shared conformance suite against the local file layout. The "outage" puts a
//! plain file where the output directory must be, so every write fails until it is
//! moved away again.

use std::path::PathBuf;
use std::time::Duration;
use usage_conformance::{check_delivery, check_stop_and_restart, poll_read, record, scratch_dir, Backend};
use usage_core::Event;

struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    fn parked(&self) -> PathBuf {
        self.root.with_extension("down")
    }
}

impl Backend for LocalDir {
    fn name(&self) -> String {
        "local directory".into()
    }
    fn exporter_type(&self) -> String {
        "file".into()
    }
    fn exporter_settings(&self, run: &str) -> String {
        format!(
            "path = {:?}\ncompression = \"zstd\"\n",
            self.root.join(run).display().to_string()
        )
    }
    fn read_back(&self, run: &str, expected: usize) -> Result<Vec<Event>, String> {
        poll_read(Duration::from_secs(5), expected, || {
            let mut out = Vec::new();
            usage_file::read::scan(&self.root.join(run), &Default::default(), |e| out.push(e))
                .map_err(|e| e.to_string())?;
            Ok(out)
        })
    }
    fn stop(&mut self) -> Result<(), String> {
        std::fs::rename(&self.root, self.parked()).map_err(|e| e.to_string())?;
        std::fs::write(&self.root, b"not a directory").map_err(|e| e.to_string())
    }
    fn start(&mut self) -> Result<(), String> {
        std::fs::remove_file(&self.root).map_err(|e| e.to_string())?;
        std::fs::rename(self.parked(), &self.root).map_err(|e| e.to_string())
    }
}

fn local_dir(name: &str) -> (PathBuf, LocalDir) {
    let scratch = scratch_dir(name);
    let root = scratch.join("out");
    std::fs::create_dir_all(&root).unwrap();
    (scratch, LocalDir { root })
}

// The checks need no server, so they run in plain `cargo test` (and in
// `cargo xtask e2e`'s table), one test each.

#[test]
fn conformance_delivery_routing_fidelity() {
    let (scratch, mut backend) = local_dir("conformance-file-delivery");
    let report = check_delivery(&mut backend, &scratch, 3000).unwrap_or_else(|e| panic!("file: {e}"));
    assert_eq!(report.lost, 0, "{report:?}");
    record(&[report]);
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn conformance_stop_and_restart() {
    let (scratch, mut backend) = local_dir("conformance-file-outage");
    let report = check_stop_and_restart(&mut backend, &scratch, 3000).unwrap_or_else(|e| panic!("file: {e}"));
    assert_eq!(report.lost, 0, "{report:?}");
    record(&[report]);
    let _ = std::fs::remove_dir_all(&scratch);
}
