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
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, OnceLock};
use twox_hash::XxHash3_64;

/// The reference an event record carries: XXH3-64 of the encoded payload.
pub(crate) fn fingerprint(payload: &[u8]) -> u64 {
    XxHash3_64::oneshot(payload)
}

/// Every schema and resource a spool's records can refer to, by fingerprint.
#[derive(Debug, Default, Clone)]
pub(crate) struct Catalog {
    schemas: HashMap<u64, Arc<Schema>, ByFingerprint>,
    resources: HashMap<u64, Arc<Resource>, ByFingerprint>,
}

/// Hashes a fingerprint (already a hash) with a keyed 64-bit mix instead of
/// SipHash: every event read back looks its schema and resource up. The key is
/// random per process, so crafted fingerprints cannot pile into one bucket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ByFingerprint(u64);

impl Default for ByFingerprint {
    fn default() -> Self {
        static KEY: OnceLock<u64> = OnceLock::new();
        ByFingerprint(*KEY.get_or_init(|| RandomState::new().hash_one(0u64) | 1))
    }
}

impl BuildHasher for ByFingerprint {
    type Hasher = KeyedMix;
    fn build_hasher(&self) -> KeyedMix {
        KeyedMix { key: self.0, h: 0 }
    }
}

/// The hasher [`ByFingerprint`] builds.
pub(crate) struct KeyedMix {
    key: u64,
    h: u64,
}

impl Hasher for KeyedMix {
    fn write_u64(&mut self, n: u64) {
        // SplitMix64's finalizer: every input bit reaches every output bit.
        let mut z = n ^ self.key ^ self.h.rotate_left(29);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.h = z ^ (z >> 31);
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn finish(&self) -> u64 {
        self.h
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_spread_over_the_low_bits_whichever_bits_differ() {
        let build = ByFingerprint::default();
        for shift in [0, 20, 40, 54] {
            let buckets: std::collections::HashSet<u64> =
                (0..1024u64).map(|k| build.hash_one(k << shift) & 1023).collect();
            assert!(
                buckets.len() > 500,
                "keys differing at bit {shift}: {} buckets",
                buckets.len()
            );
        }
    }
}
