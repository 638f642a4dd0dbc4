//! Matching attribute keys to field names without a `memcmp` call per candidate.

use crate::words::{load4, load8};

/// A name's length and two words that hold every byte of a name up to 16 bytes
/// long (its first and last 8, overlapping; shorter names in overlapping halves),
/// compared as three words. A receiver matches every attribute of every record to
/// its kind's field names, and names of one length (`project`, `success`) differ
/// only in content. Equal keys of names up to 16 bytes are equal names; longer
/// names are compared whole once their keys agree ([`NameKey::matches`]).
///
/// ```
/// use usage_core::receive::NameKey;
/// let field = NameKey::of("project");
/// assert!(field.matches(NameKey::of("project"), "project", "project"));
/// assert!(!field.matches(NameKey::of("protect"), "project", "protect"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameKey {
    len: usize,
    first: u64,
    last: u64,
}

impl NameKey {
    /// The key of `name`.
    #[inline]
    pub fn of(name: &str) -> NameKey {
        let b = name.as_bytes();
        let n = b.len();
        let (first, last) = if n >= 8 {
            (load8(b, 0), load8(b, n - 8))
        } else if n >= 4 {
            (load4(b, 0) | load4(b, n - 4) << 32, 0)
        } else {
            // Up to 3 bytes: first, middle and last hold them all.
            let at = |i: usize| b.get(i).map_or(0, |&x| u64::from(x));
            (at(0) | at(n / 2) << 8 | at(n.saturating_sub(1)) << 16, 0)
        };
        NameKey { len: n, first, last }
    }

    /// Whether `name`, whose key this is, is `other` (with `other_key` its key).
    #[inline]
    pub fn matches(self, other_key: NameKey, name: &str, other: &str) -> bool {
        self == other_key && (self.len <= 16 || name == other)
    }
}

#[cfg(test)]
mod tests {
    use super::NameKey;

    #[test]
    fn name_keys_match_exactly_the_equal_names() {
        // Every length up to 20, and each name changed at each position in turn.
        let mut names: Vec<String> = Vec::new();
        for len in 0..=20usize {
            let base: String = (0..len).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            names.push(base.clone());
            for at in 0..len {
                let mut b = base.clone().into_bytes();
                b[at] = b'_';
                names.push(String::from_utf8(b).unwrap());
            }
        }
        names.extend(
            [
                "event.id",
                "project",
                "success",
                "api_method",
                "latency_ms",
                "is_archive",
            ]
            .map(String::from),
        );
        for a in &names {
            for b in &names {
                let matched = NameKey::of(a).matches(NameKey::of(b), a, b);
                assert_eq!(matched, a == b, "{a:?} vs {b:?}");
            }
        }
    }
}
