//! Review M8: an instance's own settings that would stop or spin its worker are
//! config errors naming the key, before anything is opened.

use crate::config::{ExporterOptions, ExporterSection};
use crate::testing::MemoryExporter;
use crate::ExporterDefaults;
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

fn build_allowing_in_flight(batches_in_flight: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut section = ExporterSection::new("x", "custom");
    section.options.batches_in_flight = Some(batches_in_flight);
    let defaults = ExporterDefaults {
        batches_in_flight: Some(2),
        ..ExporterDefaults::NONE
    };
    Pipeline::builder()
        .configure(|c| c.data_dir = dir.path().to_path_buf())
        .exporter_with_defaults(section, MemoryExporter::new(), defaults)
        .build()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

#[test]
fn batches_in_flight_is_bounded_and_only_for_types_that_allow_it() {
    let in_flight = |n| ExporterOptions {
        batches_in_flight: Some(n),
        ..Default::default()
    };
    assert_eq!(
        build_with(in_flight(2)),
        "exporters.x.batches_in_flight: the custom exporter sends one batch at a time"
    );
    assert_eq!(build_with(in_flight(1)), "", "1 is every type's");
    assert_eq!(build_allowing_in_flight(16), "");
    assert_eq!(
        build_allowing_in_flight(0),
        "exporters.x.batches_in_flight: 0 is not between 1 and 16"
    );
    assert_eq!(
        build_allowing_in_flight(17),
        "exporters.x.batches_in_flight: 17 is not between 1 and 16"
    );
}
