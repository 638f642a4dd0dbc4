//! Unaligned little-endian word reads for the byte scans of `Text` and the JSON
//! encoder: a word at a time instead of a byte at a time, read from the bytes
//! themselves (never from a copy on the stack, which would stall on store forwarding).

/// Reads 8 bytes at `at` (unaligned), little-endian. Checked (review L9): a bounds
/// check the callers' own length tests usually let the compiler drop, then one load.
#[inline(always)]
pub(crate) fn load8(s: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&s[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Reads 4 bytes at `at` (unaligned), little-endian, into the low half; checked as
/// [`load8`].
#[inline(always)]
pub(crate) fn load4(s: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&s[at..at + 4]);
    u64::from(u32::from_le_bytes(word))
}
