//! Each exporter's durable cursor: the sequence number below which it has
//! finished every event (delivered, dead-lettered, or not its kind).
//!
//! `cursors/<exporter>.cursor`: `"USGCURS1" | seq u64 | crc32c(previous 16 bytes) u32`.

use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"USGCURS1";
const LEN: usize = 20;

pub(crate) fn path(dir: &Path, exporter: &str) -> PathBuf {
    dir.join("cursors").join(format!("{exporter}.cursor"))
}

pub(crate) fn encode(seq: u64) -> [u8; LEN] {
    let mut b = [0u8; LEN];
    b[..8].copy_from_slice(MAGIC);
    b[8..16].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32c::crc32c(&b[..16]);
    b[16..20].copy_from_slice(&crc.to_le_bytes());
    b
}

/// What a cursor file held.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Loaded {
    Missing,
    Seq(u64),
    Garbage(String),
}

pub(crate) fn load(path: &Path) -> Loaded {
    let b = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
        Err(e) => return Loaded::Garbage(format!("unreadable: {e}")),
    };
    if b.len() != LEN || &b[..8] != MAGIC {
        return Loaded::Garbage(format!("{} bytes, not a cursor file", b.len()));
    }
    let crc = u32::from_le_bytes([b[16], b[17], b[18], b[19]]);
    if crc != crc32c::crc32c(&b[..16]) {
        return Loaded::Garbage("checksum mismatch".into());
    }
    let mut s = [0u8; 8];
    s.copy_from_slice(&b[8..16]);
    Loaded::Seq(u64::from_le_bytes(s))
}

pub(crate) fn store(path: &Path, seq: u64) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::fs::write_atomic(path, &encode(seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_missing_and_garbage() {
        let d = tempfile::tempdir().unwrap();
        let p = path(d.path(), "kafka");
        assert_eq!(load(&p), Loaded::Missing);
        store(&p, 42).unwrap();
        assert_eq!(load(&p), Loaded::Seq(42));
        let mut b = std::fs::read(&p).unwrap();
        b[9] ^= 1;
        std::fs::write(&p, &b).unwrap();
        assert!(matches!(load(&p), Loaded::Garbage(m) if m.contains("checksum")));
        std::fs::write(&p, b"hello").unwrap();
        assert!(matches!(load(&p), Loaded::Garbage(_)));
    }
}
