//! Which schema record of the active segment an event refers to, found by the
//! schema's address instead of by encoding and hashing its schema per event.
//!
//! A kind can have more than one schema (a kind the gateway does not know is read
//! with one inferred from each record's attributes), so the kind's name is not
//! enough: each schema gets its own record, named by its fingerprint.

use crate::event::schema::Schema;
use crate::event::Event;
use std::sync::Arc;

/// A schema recognised by its address: one that lives as long as the program, or
/// a shared one this key keeps alive, so no other schema can take its address
/// while it is cached.
enum Key {
    Static(&'static Schema),
    Shared(Arc<Schema>),
}

impl Key {
    fn of(e: &Event) -> Option<Key> {
        let data = e.data();
        match data.static_schema() {
            Some(s) => Some(Key::Static(s)),
            None => data.shared_schema().map(|s| Key::Shared(s.clone())),
        }
    }

    fn is(&self, schema: &Schema) -> bool {
        match self {
            Key::Static(s) => std::ptr::eq(*s, schema),
            Key::Shared(s) => std::ptr::eq(&**s, schema),
        }
    }
}

/// The references of the schemas last seen (a request's events share one).
#[derive(Default)]
pub(super) struct SchemaCache {
    recent: Vec<(Key, u64)>,
}

/// How many schemas are remembered.
const RECENT: usize = 16;

impl SchemaCache {
    /// The reference of `schema`, if it was seen lately.
    pub(super) fn get(&self, schema: &Schema) -> Option<u64> {
        self.recent.iter().rev().find(|(k, _)| k.is(schema)).map(|(_, r)| *r)
    }

    /// Remembers that `e`'s schema has `reference` (a payload whose schema has no
    /// lasting address is not remembered: its schema is encoded each time).
    pub(super) fn note(&mut self, e: &Event, reference: u64) {
        if let Some(key) = Key::of(e) {
            if self.recent.len() == RECENT {
                self.recent.remove(0);
            }
            self.recent.push((key, reference));
        }
    }

    /// Forgets every schema (their records may not be in the segment).
    pub(super) fn clear(&mut self) {
        self.recent.clear();
    }
}
