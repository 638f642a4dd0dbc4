//! Review M8: an instance's own settings that would stop or spin its worker are
//! config errors naming the key, before anything is opened.

use crate::config::{ExporterOptions, ExporterSection};
use crate::testing::MemoryExporter;
use crate::Pipeline;
use std::time::Duration;

fn build_with(options: ExporterOptions) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut section = ExporterSection::new("x", "custom");
    section.options = options;
    Pipeline::builder()
        .configure(|c| c.data_dir = dir.path().to_path_buf())
        .exporter_with(section, MemoryExporter::new())
        .build()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

#[test]
fn settings_a_worker_cannot_run_with_are_config_errors() {
    for (options, names) in [
        (
            ExporterOptions {
                batch_max_bytes: Some(0),
                ..Default::default()
            },
            "exporters.x.batch_max_bytes: must be greater than 0",
        ),
        (
            ExporterOptions {
                export_timeout: Some(Duration::ZERO),
                ..Default::default()
            },
            "exporters.x.export_timeout: must be greater than 0",
        ),
        (
            ExporterOptions {
                retry_base: Some(Duration::from_secs(5)),
                retry_max: Some(Duration::from_secs(1)),
                ..Default::default()
            },
            "exporters.x.retry_max: 1s is less than retry_base 5s",
        ),
        (
            ExporterOptions {
                queue_max_bytes: Some(0),
                ..Default::default()
            },
            "exporters.x.queue_max_bytes: must be greater than 0",
        ),
    ] {
        assert_eq!(build_with(options), names);
    }
    assert_eq!(build_with(ExporterOptions::default()), "", "the defaults build");
}
