//! Review H6 at the pipeline: an event whose kind cannot name a path, topic, table
//! or prefix (a schema built by hand, never validated) reaches no exporter; it is
//! counted and logged, never written.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;
use usage_core::testing::MemoryExporter;
use usage_core::{Event, FieldDef, FieldType, OwnedValue, Pipeline, Record, Schema};

#[test]
fn a_kind_that_is_not_a_valid_name_goes_nowhere_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let memory = MemoryExporter::new();
    let p = Pipeline::builder()
        .configure(|c| c.data_dir = dir.path().to_path_buf())
        .exporter("mem", memory.clone())
        .build()
        .unwrap();
    let schema = Arc::new(Schema {
        kind: Cow::Owned("../../etc".into()),
        fields: Cow::Owned(vec![FieldDef {
            name: Cow::Borrowed("a"),
            ty: FieldType::I64,
            nullable: false,
        }]),
    });
    for i in 0..3 {
        let record = Record::new(schema.clone(), vec![OwnedValue::I64(i)]).unwrap();
        p.sink().emit(Event::from_record(record));
    }
    let report = p.shutdown_blocking(Duration::from_secs(5)).unwrap_err();
    assert_eq!(report.report().dropped_at_ingest.unrouted, 3);
    assert_eq!(memory.count(), 0, "nothing reached the exporter");
}
