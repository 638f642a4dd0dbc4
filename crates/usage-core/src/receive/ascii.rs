//! Whether received bytes are ASCII, a word at a time, and UTF-8 checked that
//! way first when they are short.

use crate::words::{load4, load8};

/// The high bit of every byte of a word.
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether every byte of `bytes` is ASCII (so they are valid UTF-8 as they are).
/// Inlined for the short strings of attribute keys, ids and values, where it
/// costs a few loads instead of a call into a general validator: every word is
/// read from the bytes themselves (the last one overlapping the one before it).
///
/// ```
/// use usage_core::receive::is_ascii;
/// assert!(is_ascii(b"lava@1qu0jm3ts8g5sc7kmc9wruyqk7gk2ms8etjmg6y"));
/// assert!(!is_ascii("prøject".as_bytes()));
/// ```
#[inline(always)]
pub fn is_ascii(bytes: &[u8]) -> bool {
    let n = bytes.len();
    let seen = if n >= 8 {
        let mut seen = load8(bytes, n - 8);
        let mut at = 0;
        while at + 8 < n {
            seen |= load8(bytes, at);
            at += 8;
        }
        seen
    } else if n >= 4 {
        load4(bytes, 0) | load4(bytes, n - 4)
    } else {
        bytes.iter().fold(0, |seen, &b| seen | u64::from(b))
    };
    seen & HIGHS == 0
}

/// Longest string [`utf8`] checks inline; longer ones go to the std validator,
/// whose loop of wide words wins there.
const SHORT_UTF8: usize = 64;

/// `bytes` as a `str` when they are UTF-8. Attribute keys, ids and most values
/// are short ASCII, where the inlined [`is_ascii`] costs a fraction of a call
/// into `str::from_utf8` (a measurable share of receiving and of reading the
/// spool back); anything else goes to that call.
///
/// ```
/// use usage_core::receive::utf8;
/// assert_eq!(utf8(b"relay_usage"), Some("relay_usage"));
/// assert_eq!(utf8(&"é".as_bytes()[..1]), None);
/// ```
#[inline(always)]
pub fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.len() <= SHORT_UTF8 && is_ascii(bytes) {
        // SAFETY: every byte is ASCII, and ASCII is valid UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::{is_ascii, utf8, SHORT_UTF8};

    #[test]
    fn agrees_with_std_for_a_high_byte_at_every_offset_of_every_length() {
        for len in 0..80 {
            let plain = vec![b'k'; len];
            assert!(is_ascii(&plain), "len {len}");
            for at in 0..len {
                for byte in [0x7f, 0x80, 0xc3, 0xff] {
                    let mut b = plain.clone();
                    b[at] = byte;
                    assert_eq!(is_ascii(&b), b.is_ascii(), "len {len} byte {byte:#x} at {at}");
                }
            }
        }
    }

    #[test]
    fn utf8_agrees_with_std_for_every_byte_at_every_offset() {
        // Lengths on both sides of the inline check's limit; each byte value once at each offset.
        for len in [1, 2, SHORT_UTF8 - 1, SHORT_UTF8, SHORT_UTF8 + 1, 2 * SHORT_UTF8] {
            for at in 0..len {
                for byte in 0..=255u8 {
                    let mut b = vec![b'k'; len];
                    b[at] = byte;
                    assert_eq!(
                        utf8(&b),
                        std::str::from_utf8(&b).ok(),
                        "len {len} byte {byte:#x} at {at}"
                    );
                }
            }
        }
        for s in ["", "é", "relay_usage", "プロジェクト", "a\u{10FFFF}"] {
            assert_eq!(utf8(s.as_bytes()), Some(s));
        }
        // A valid multi-byte character cut short is refused.
        assert_eq!(utf8(&"é".as_bytes()[..1]), None);
    }
}
