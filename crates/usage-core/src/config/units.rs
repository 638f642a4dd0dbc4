//! Human units in config: durations like `"500ms"`, sizes like `"64MiB"`.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::time::Duration;

/// Parses a duration such as `500ms`, `10s`, `5m`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|_| format!("invalid duration {s:?}: expected a number with a unit, e.g. \"500ms\", \"10s\", \"5m\""))
}

/// Parses a byte size such as `64MiB`, `1GB`, `512k`, `1_000`; a bare number is bytes.
/// Binary (`KiB`, `MiB`, `GiB`, `TiB`) and decimal (`KB`/`k`, `MB`, `GB`, `TB`) units.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let bad = || format!("invalid size {s:?}: expected e.g. \"64MiB\", \"1GiB\", \"512KB\" or a number of bytes");
    let t = s.trim().replace('_', "");
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" | "ki" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" | "mi" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" | "gi" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" | "ti" => 1 << 40,
        _ => return Err(bad()),
    };
    let v = n * mult as f64;
    if !v.is_finite() || v < 0.0 || v > usize::MAX as f64 {
        return Err(bad());
    }
    Ok(v as usize)
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration string such as \"500ms\" or \"10s\"")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(E::custom)
    }
}

struct BytesVisitor;

impl Visitor<'_> for BytesVisitor {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size such as \"64MiB\" or a number of bytes")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        parse_bytes(v).map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
        usize::try_from(v).map_err(|_| E::custom(format!("size {v} is too large")))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<usize, E> {
        usize::try_from(v).map_err(|_| E::custom(format!("invalid size {v}: must not be negative")))
    }
}

/// `deserialize_with` for a [`Duration`] written as `"500ms"`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

/// `deserialize_with` for an optional [`Duration`].
pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// `deserialize_with` for a byte size written as `"64MiB"` or a number.
pub fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    d.deserialize_any(BytesVisitor)
}

/// `deserialize_with` for an optional byte size.
pub fn opt_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    bytes(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("1.5 KB"), Ok(1500));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("1_000"), Ok(1000));
        assert!(parse_bytes("64 parsecs").unwrap_err().contains("\"64 parsecs\""));
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("-1MB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("soon").unwrap_err().contains("\"soon\""));
        assert!(parse_duration("10").is_err(), "a unit is required");
    }
}
