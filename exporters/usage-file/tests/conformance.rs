//! The shared conformance suite against the local file layout. The "outage" puts a
//! plain file where the output directory must be, so every write fails until it is
//! moved away again.

use std::path::PathBuf;
use std::time::Duration;
use usage_conformance::{poll_read, record, run, scratch_dir, Backend};
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

/// Needs no server, so it runs in plain `cargo test` (and in `cargo xtask e2e`'s table).
#[test]
fn file_exporter_passes_the_conformance_suite() {
    let scratch = scratch_dir("conformance-file");
    let root = scratch.join("out");
    std::fs::create_dir_all(&root).unwrap();
    let mut backend = LocalDir { root };
    let reports = run(&mut backend, &scratch, 3000).unwrap_or_else(|e| panic!("file: {e}"));
    for r in &reports {
        assert_eq!(r.lost, 0, "{r:?}");
    }
    record(&reports);
    let _ = std::fs::remove_dir_all(&scratch);
}
