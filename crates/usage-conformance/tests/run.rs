//! `run` goes through every named check and names each that failed, so one broken
//! check does not hide the others.

use std::path::PathBuf;
use usage_conformance::{run, scratch_dir, Backend, CHECKS};
use usage_core::Event;

/// Writes through the file exporter but reads back nothing: every check must fail.
struct Forgetful {
    root: PathBuf,
}

impl Backend for Forgetful {
    fn name(&self) -> String {
        "forgetful".into()
    }
    fn exporter_type(&self) -> String {
        "file".into()
    }
    fn exporter_settings(&self, run: &str) -> String {
        format!("path = {:?}\n", self.root.join(run).display().to_string())
    }
    fn read_back(&self, _run: &str, _expected: usize) -> Result<Vec<Event>, String> {
        Ok(Vec::new())
    }
    fn stop(&mut self) -> Result<(), String> {
        Ok(())
    }
    fn start(&mut self) -> Result<(), String> {
        Ok(())
    }
}

#[test]
fn every_failed_check_is_named() {
    let scratch = scratch_dir("conformance-forgetful");
    let mut backend = Forgetful {
        root: scratch.join("out"),
    };
    let err = run(&mut backend, &scratch, 30).unwrap_err();
    assert!(
        err.starts_with(&format!("{} of {} checks failed", CHECKS.len(), CHECKS.len())),
        "{err}"
    );
    for (name, _) in CHECKS {
        assert!(err.contains(&format!("{name}: ")), "{name} missing from: {err}");
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
