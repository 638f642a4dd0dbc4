//! Whether received bytes are ASCII, a word at a time.

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

#[cfg(test)]
mod tests {
    use super::is_ascii;

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
}
