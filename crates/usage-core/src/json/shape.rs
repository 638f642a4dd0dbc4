//! How much a JSON text can cost once parsed into a tree, read from its structure
//! in one pass without parsing it: a receiver refuses a text whose tree could
//! outgrow its budget before building any of it.

/// Bytes one parsed value may take at most, container overhead included: a
/// `serde_json::Value` is 32 bytes, held in a growing array (up to twice that) or
/// a map node with its key.
pub const VALUE_BYTES: usize = 128;

/// An upper bound on the memory `bytes` takes parsed into a tree: every value
/// (string, number, literal, array, object; keys counted as values) at
/// [`VALUE_BYTES`], plus the strings' own bytes, which are at most the text's.
///
/// ```
/// use usage_core::json::decoded_bytes_bound;
/// assert!(decoded_bytes_bound(b"[0,0,0]") >= 4 * 128);
/// assert!(decoded_bytes_bound(br#"{"a":"x,y[z"}"#) < 4 * 128 + 20);
/// ```
pub fn decoded_bytes_bound(bytes: &[u8]) -> usize {
    value_count(bytes)
        .saturating_mul(VALUE_BYTES)
        .saturating_add(bytes.len())
}

/// Whether `bytes` parsed stays within `budget`: texts too short to exceed it are
/// not scanned (a value takes at least one byte of text).
pub fn within_decode_budget(bytes: &[u8], budget: usize) -> bool {
    bytes.len().saturating_mul(VALUE_BYTES + 1) <= budget || decoded_bytes_bound(bytes) <= budget
}

/// Counts the values of a JSON text without parsing it: each string (keys too),
/// container and scalar outside strings.
pub fn value_count(bytes: &[u8]) -> usize {
    shape(bytes).0
}

/// Counts the objects and arrays of a JSON text without parsing it.
pub fn container_count(bytes: &[u8]) -> usize {
    shape(bytes).1
}

/// (values, containers) in one pass.
fn shape(bytes: &[u8]) -> (usize, usize) {
    let (mut values, mut containers, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                values += 1;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    // An escape takes the next byte with it (`\"` does not end the string).
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'{' | b'[' => {
                values += 1;
                containers += 1;
                i += 1;
            }
            b'}' | b']' | b',' | b':' | b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            _ => {
                values += 1;
                while i < bytes.len()
                    && !matches!(
                        bytes[i],
                        b'}' | b']' | b',' | b':' | b'"' | b' ' | b'\t' | b'\n' | b'\r'
                    )
                {
                    i += 1;
                }
            }
        }
    }
    (values, containers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_value_and_skips_escaped_quotes() {
        assert_eq!(value_count(br#"{"a":[1,true,null,"x\"y",{}]}"#), 8);
        assert_eq!(value_count(b"  [ ]  "), 1);
        assert_eq!(value_count(br#""unterminated \"#), 1);
        assert_eq!(value_count(b""), 0);
        assert_eq!(container_count(br#"{"a":[1,"[{",{}]}"#), 3);
    }

    #[test]
    fn short_texts_are_within_without_a_scan_and_long_dense_ones_are_not() {
        assert!(within_decode_budget(b"[0,0,0]", 7 * 129));
        let dense = [b"[".as_slice(), &b"0,".repeat(10_000), b"0]"].concat();
        assert!(!within_decode_budget(&dense, 1 << 20));
        assert!(within_decode_budget(&dense, 4 << 20));
        // The same length in one string is cheap.
        let sparse = [b"\"".as_slice(), &vec![b'a'; dense.len() - 2], b"\""].concat();
        assert!(within_decode_budget(&sparse, 1 << 20));
    }
}
