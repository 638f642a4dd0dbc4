//! Schemas and resources by reference (segment format 2).
//!
//! A format-2 event record names its schema and its resource by a fingerprint of the
//! encoded schema or resource, not by a position inside its segment. So a damaged
//! copy costs nothing while any intact copy exists: each segment writes its schemas
//! and resource where they are first needed and again when it is sealed, a copy in
//! any segment serves every segment, and the kinds compiled into this binary are a
//! last copy. An event is lost to a damaged schema only when every copy is gone.

use super::codec;
use crate::event::schema::Schema;
use crate::resource::Resource;
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
    /// A catalog that already knows every kind linked into this binary.
    pub(crate) fn with_compiled_kinds() -> Catalog {
        let mut c = Catalog::default();
        let mut buf = Vec::new();
        for s in crate::event::kind::registered_kinds() {
            buf.clear();
            codec::encode_schema(&mut buf, s);
            c.schemas.insert(fingerprint(&buf), Arc::new(s.clone()));
        }
        c
    }

    /// Adds a schema record's payload. False when it does not decode or does not
    /// match its reference (damage the record checksum did not catch).
    pub(crate) fn add_schema_record(&mut self, reference: u64, payload: &[u8]) -> bool {
        if fingerprint(payload) != reference {
            return false;
        }
        if self.schemas.contains_key(&reference) {
            return true;
        }
        match codec::decode_schema(payload) {
            Ok(s) => {
                self.schemas.insert(reference, Arc::new(s));
                true
            }
            Err(_) => false,
        }
    }

    /// Adds a resource record's payload; false as for schemas.
    pub(crate) fn add_resource_record(&mut self, reference: u64, payload: &[u8]) -> bool {
        if fingerprint(payload) != reference {
            return false;
        }
        if self.resources.contains_key(&reference) {
            return true;
        }
        match codec::decode_resource(payload) {
            Ok(r) => {
                self.resources.insert(reference, Arc::new(r));
                true
            }
            Err(_) => false,
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventKind, RelayUsage};

    #[test]
    fn compiled_kinds_are_known_and_damaged_copies_are_refused() {
        let mut payload = Vec::new();
        codec::encode_schema(&mut payload, RelayUsage::schema());
        let reference = fingerprint(&payload);
        let c = Catalog::with_compiled_kinds();
        assert_eq!(c.schema(reference).map(|s| s.as_ref()), Some(RelayUsage::schema()));

        let mut empty = Catalog::default();
        let mut bent = payload.clone();
        bent[5] ^= 1;
        assert!(!empty.add_schema_record(reference, &bent));
        assert!(empty.schema(reference).is_none());
        assert!(empty.add_schema_record(reference, &payload));
        assert!(empty.schema(reference).is_some());

        let mut res = Vec::new();
        codec::encode_resource(&mut res, &Resource::new("svc"));
        assert!(!empty.add_resource_record(reference, &res));
        assert!(empty.add_resource_record(fingerprint(&res), &res));
        assert_eq!(empty.resource(fingerprint(&res)).unwrap().service_name.as_str(), "svc");
    }
}
