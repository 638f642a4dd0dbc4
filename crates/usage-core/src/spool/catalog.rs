//! Schemas and resources by reference (segment format 2).
//!
//! A format-2 event record names its schema and its resource by a fingerprint of the
//! encoded schema or resource, not by a position inside its segment. So a damaged
//! copy costs nothing while any intact copy exists: each segment writes its schemas
//! and resource where they are first needed and again when it is sealed, a copy in
//! any segment serves every segment, and the kinds compiled into this binary are a
//! last copy. An event is lost to a damaged schema only when every copy is gone.
//! (Filling it from records, which needs their encoding, is in `codec`.)

use crate::event::resource::Resource;
use crate::event::schema::Schema;
use std::collections::HashMap;
use std::sync::Arc;
use twox_hash::XxHash3_64;

/// The reference an event record carries: XXH3-64 of the encoded payload.
pub(crate) fn fingerprint(payload: &[u8]) -> u64 {
    XxHash3_64::oneshot(payload)
}

/// Every schema and resource a spool's records can refer to, by fingerprint.
#[derive(Debug, Default, Clone)]
pub(crate) struct Catalog {
    schemas: HashMap<u64, Arc<Schema>>,
    resources: HashMap<u64, Arc<Resource>>,
}

impl Catalog {
    /// Adds a schema the writer encoded itself.
    pub(crate) fn insert_schema(&mut self, reference: u64, schema: Arc<Schema>) {
        self.schemas.entry(reference).or_insert(schema);
    }

    /// Adds a resource the writer encoded itself.
    pub(crate) fn insert_resource(&mut self, reference: u64, resource: Arc<Resource>) {
        self.resources.entry(reference).or_insert(resource);
    }

    pub(crate) fn schema(&self, reference: u64) -> Option<&Arc<Schema>> {
        self.schemas.get(&reference)
    }

    pub(crate) fn resource(&self, reference: u64) -> Option<&Arc<Resource>> {
        self.resources.get(&reference)
    }
}
