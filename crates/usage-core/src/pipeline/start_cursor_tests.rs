//! Where an exporter starts reading the spool after a restart.

use super::builder::start_cursor;
use crate::spool::{cursor, Spool, SpoolConfig};
use crate::{Event, RelayUsage, Resource};
use std::sync::Arc;

#[test]
fn a_cursor_past_the_spooled_data_redelivers_instead_of_skipping() {
    let d = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(SpoolConfig::new(d.path()), Arc::new(Resource::new("t"))).unwrap();
    let events: Vec<Event> = (0..100)
        .map(|cu| {
            Event::new(RelayUsage {
                cu,
                ..Default::default()
            })
        })
        .collect();
    spool.append(&events);
    spool.commit().unwrap();
    let shared = spool.shared.clone();
    let data_end = spool.next_seq();
    assert_eq!(data_end, 100);
    // A flipped high bit: 100 became 100 + 2^40. Skipping to it would skip every
    // event the exporter had not delivered yet.
    cursor::store(&cursor::path(d.path(), "x"), 100 + (1 << 40)).unwrap();
    assert_eq!(start_cursor(&shared, "x", 100 + (1 << 40), data_end), 0);
    cursor::store(&cursor::path(d.path(), "y"), 40).unwrap();
    assert_eq!(
        start_cursor(&shared, "y", data_end, data_end),
        40,
        "a true cursor is kept"
    );
    cursor::store(&cursor::path(d.path(), "z"), 100).unwrap();
    assert_eq!(start_cursor(&shared, "z", data_end, data_end), 100, "all delivered");
}
