//! The partition layout shared by the file and S3 exporters:
//! `<kind>/year=YYYY/month=MM/day=DD/hour=HH/part-<id>.ndjson[.zst|.gz]`,
//! partitioned by **event time** (UTC), never by arrival time.

use serde::Deserialize;
use std::fmt;
use usage_core::Timestamp;

/// Compression of part files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// zstd (`.ndjson.zst`), the default for local files.
    #[default]
    Zstd,
    /// gzip (`.ndjson.gz`), what Athena and most tools read natively.
    Gzip,
    /// Plain NDJSON (`.ndjson`).
    None,
}

impl Compression {
    /// File name suffix, e.g. `.ndjson.zst`.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::Zstd => ".ndjson.zst",
            Compression::Gzip => ".ndjson.gz",
            Compression::None => ".ndjson",
        }
    }

    /// The compression a part file name implies, if it is a part file.
    pub fn of_file_name(name: &str) -> Option<Compression> {
        if !name.starts_with("part-") {
            return None;
        }
        [Compression::Zstd, Compression::Gzip, Compression::None]
            .into_iter()
            .find(|c| name.ends_with(c.suffix()))
    }
}

/// One hour partition of one kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition {
    /// Event kind.
    pub kind: String,
    /// UTC year.
    pub year: i32,
    /// UTC month 1-12.
    pub month: u32,
    /// UTC day 1-31.
    pub day: u32,
    /// UTC hour 0-23.
    pub hour: u32,
}

impl Partition {
    /// The partition an event of `kind` at `ts` belongs to.
    ///
    /// ```
    /// use usage_core::Timestamp;
    /// use usage_file::layout::Partition;
    /// let ts = Timestamp::parse_rfc3339("2026-03-07T09:59:59.999999Z").unwrap();
    /// let p = Partition::of("relay_usage", ts);
    /// assert_eq!(p.to_string(), "relay_usage/year=2026/month=03/day=07/hour=09");
    /// ```
    pub fn of(kind: &str, ts: Timestamp) -> Self {
        let c = ts.civil();
        Partition {
            kind: kind.to_string(),
            year: c.year,
            month: c.month,
            day: c.day,
            hour: c.hour,
        }
    }

    /// Parses `year=YYYY/month=MM/day=DD/hour=HH` path components (after the kind).
    pub fn parse(kind: &str, parts: [&str; 4]) -> Option<Self> {
        let num = |s: &str, key: &str| s.strip_prefix(key)?.strip_prefix('=')?.parse::<u32>().ok();
        Some(Partition {
            kind: kind.to_string(),
            year: i32::try_from(num(parts[0], "year")?).ok()?,
            month: num(parts[1], "month")?,
            day: num(parts[2], "day")?,
            hour: num(parts[3], "hour")?,
        })
    }

    /// `year=YYYY/month=MM/day=DD/hour=HH` (the part after the kind).
    pub fn hive_path(&self) -> String {
        format!(
            "year={:04}/month={:02}/day={:02}/hour={:02}",
            self.year, self.month, self.day, self.hour
        )
    }

    /// The first instant of this hour.
    pub fn start(&self) -> Option<Timestamp> {
        Timestamp::parse_rfc3339(&format!(
            "{:04}-{:02}-{:02}T{:02}:00:00Z",
            self.year, self.month, self.day, self.hour
        ))
        .ok()
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.hive_path())
    }
}

/// `part-<id><suffix>`.
pub fn part_file_name(id: &str, compression: Compression) -> String {
    format!("part-{id}{}", compression.suffix())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_round_trips_through_its_path() {
        let ts = Timestamp::parse_rfc3339("2024-12-31T23:00:00Z").unwrap();
        let p = Partition::of("k", ts);
        let s = p.to_string();
        let comps: Vec<&str> = s.split('/').collect();
        assert_eq!(
            Partition::parse("k", [comps[1], comps[2], comps[3], comps[4]]),
            Some(p.clone())
        );
        assert_eq!(p.start(), Some(ts));
        assert_eq!(Partition::parse("k", ["year=x", "month=1", "day=1", "hour=1"]), None);
    }

    #[test]
    fn part_names_and_compression() {
        assert_eq!(part_file_name("ab", Compression::Zstd), "part-ab.ndjson.zst");
        assert_eq!(Compression::of_file_name("part-ab.ndjson.gz"), Some(Compression::Gzip));
        assert_eq!(Compression::of_file_name(".part-ab.ndjson.gz.tmp"), None);
        assert_eq!(Compression::of_file_name("other.ndjson"), None);
    }
}
