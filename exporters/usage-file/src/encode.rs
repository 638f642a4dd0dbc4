//! Encoding a batch into per-partition NDJSON parts, compressed.

use crate::layout::{Compression, Partition};
use std::collections::BTreeMap;
use std::io::Write;
use usage_core::{json, Batch};

/// One part: where it goes and its compressed bytes.
#[derive(Debug)]
pub struct EncodedPart {
    /// Its partition.
    pub partition: Partition,
    /// Its events' positions in the batch ([`Batch::iter`] order), so a
    /// destination that refuses one part can refuse just those events.
    pub indices: Vec<usize>,
    /// Uncompressed NDJSON bytes.
    pub raw_bytes: usize,
    /// The file contents.
    pub bytes: Vec<u8>,
}

/// Splits a batch by (kind, event hour) and encodes each group as compressed NDJSON.
pub fn encode_parts(batch: &Batch, compression: Compression, level: i32) -> std::io::Result<Vec<EncodedPart>> {
    let mut groups: BTreeMap<Partition, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (i, e) in batch.iter().enumerate() {
        let (indices, buf) = groups.entry(Partition::of(e.kind(), e.ts())).or_default();
        json::write_event(buf, e, batch.resource());
        buf.push(b'\n');
        indices.push(i);
    }
    groups
        .into_iter()
        .map(|(partition, (indices, raw))| {
            Ok(EncodedPart {
                partition,
                indices,
                raw_bytes: raw.len(),
                bytes: compress(&raw, compression, level)?,
            })
        })
        .collect()
}

/// Compresses NDJSON bytes.
pub fn compress(raw: &[u8], compression: Compression, level: i32) -> std::io::Result<Vec<u8>> {
    match compression {
        Compression::Zstd => zstd::stream::encode_all(raw, level),
        Compression::Gzip => {
            let level = flate2::Compression::new(level.clamp(0, 9) as u32);
            let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(raw.len() / 4), level);
            enc.write_all(raw)?;
            enc.finish()
        }
        Compression::None => Ok(raw.to_vec()),
    }
}

/// Decompresses a whole part.
pub fn decompress(bytes: &[u8], compression: Compression) -> std::io::Result<Vec<u8>> {
    match compression {
        Compression::Zstd => zstd::stream::decode_all(bytes),
        Compression::Gzip => {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(bytes), &mut out)?;
            Ok(out)
        }
        Compression::None => Ok(bytes.to_vec()),
    }
}
