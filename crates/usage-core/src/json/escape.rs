//! Which bytes of a string JSON escapes, found a wide word at a time, and the
//! escaped literal for the strings that have one.

use crate::words::{load4, load8};

/// Bytes that must be escaped in a JSON string: controls, `"` and `\\`.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Whether any byte of an 8-byte word needs escaping (a control byte, `"` or `\`),
/// tested on the whole word at once.
#[inline(always)]
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A byte below n sets its high bit in (w - n) while clear in w (exact for n <= 0x80).
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGHS;
    (below(w, 0x20) | below(w ^ (ONES * u64::from(b'"')), 1) | below(w ^ (ONES * u64::from(b'\\')), 1)) != 0
}

/// Whether any byte of `bytes` must be escaped, tested a word at a time. Every
/// word is read from the string itself (the last one overlapping the one before,
/// short strings as overlapping halves), never from a copy on the stack, which
/// would stall the load on store forwarding.
#[inline(always)]
fn needs_escape_by_words(bytes: &[u8]) -> bool {
    let n = bytes.len();
    if n >= 8 {
        let mut found = false;
        let mut at = 0;
        while at + 8 <= n {
            found |= word_needs_escape(load8(bytes, at));
            at += 8;
        }
        if at < n {
            found |= word_needs_escape(load8(bytes, n - 8));
        }
        found
    } else if n >= 4 {
        word_needs_escape(load4(bytes, 0) | (load4(bytes, n - 4) << 32))
    } else if let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) {
        let mid = bytes[n / 2];
        word_needs_escape(u64::from_le_bytes([
            first, mid, last, first, first, first, first, first,
        ]))
    } else {
        false
    }
}

/// The string literal of `bytes`, which hold at least one byte to escape.
#[cold]
pub(super) fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !NEEDS_ESCAPE[usize::from(b)] {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 15)],
                ]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether any byte of `bytes` must be escaped. Strings of 16 bytes or more
/// (hashes, addresses, URLs) are tested 16 bytes at a time with SSE2, which every
/// x86-64 processor has: a third of the instructions of the word test, which
/// was most of the cost of writing a string.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn needs_escape(bytes: &[u8]) -> bool {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_setzero_si128,
    };
    let n = bytes.len();
    if n < 16 {
        return needs_escape_by_words(bytes);
    }
    // A control byte is one that the unsigned minimum with 0x1f leaves unchanged.
    let test = |at: usize| {
        let chunk = &bytes[at..at + 16];
        // SAFETY: SSE2 is part of x86-64; the load reads the 16 bytes of `chunk`
        // (unaligned loads are allowed).
        unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            _mm_or_si128(control, _mm_or_si128(quote, backslash))
        }
    };
    // SAFETY: SSE2 is part of x86-64 (register operations only).
    let mut found = unsafe { _mm_setzero_si128() };
    let mut at = 0;
    while at + 16 <= n {
        // SAFETY: as above.
        found = unsafe { _mm_or_si128(found, test(at)) };
        at += 16;
    }
    if at < n {
        // The last 16 bytes, overlapping the chunk before.
        // SAFETY: as above.
        found = unsafe { _mm_or_si128(found, test(n - 16)) };
    }
    // SAFETY: as above.
    unsafe { _mm_movemask_epi8(found) != 0 }
}

/// Whether any byte of `bytes` must be escaped (a word at a time elsewhere).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(super) fn needs_escape(bytes: &[u8]) -> bool {
    needs_escape_by_words(bytes)
}

#[cfg(test)]
mod tests {
    use super::{needs_escape, needs_escape_by_words, NEEDS_ESCAPE};

    #[test]
    fn finds_every_byte_to_escape_at_every_offset_of_every_length() {
        for len in 0..80 {
            let plain = vec![b'k'; len];
            assert!(!needs_escape(&plain) && !needs_escape_by_words(&plain), "len {len}");
            for at in 0..len {
                for byte in [0x00, 0x1f, 0x20, b'"', b'\\', b'a', 0x7f, 0x80, 0xc3, 0xff] {
                    let mut b = plain.clone();
                    b[at] = byte;
                    let want = NEEDS_ESCAPE[usize::from(byte)];
                    assert_eq!(needs_escape(&b), want, "len {len} byte {byte:#x} at {at}");
                    assert_eq!(
                        needs_escape_by_words(&b),
                        want,
                        "words: len {len} byte {byte:#x} at {at}"
                    );
                }
            }
        }
    }
}
