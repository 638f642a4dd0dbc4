//! The attribute shape every OTel SDK writes, read without the general walker.
//!
//! A `KeyValue` is almost always `key` then `value`, each once, with short
//! lengths, and its `AnyValue` holds one scalar. Walking it field by field costs
//! six trips through the general reader (tags, wire types, bounds, error paths),
//! about half of reading a request. [`read`] takes exactly that shape in a few
//! compares and hands everything else (repeated or unknown fields, long lengths,
//! nested values, anything malformed) back to the general walker, which stays
//! the one definition of what a `KeyValue` means: on every input the two agree
//! (a property test below checks it).

use super::view::{Any, Attr};
use super::wire::{short_field as field, utf8};

/// `KeyValue.key` (field 1, length-delimited).
const KEY_TAG: u8 = 0x0a;
/// `KeyValue.value` (field 2, length-delimited).
const VALUE_TAG: u8 = 0x12;
/// `AnyValue.string_value` (field 1, length-delimited).
const STRING_TAG: u8 = 0x0a;
/// `AnyValue.bool_value` (field 2, varint).
const BOOL_TAG: u8 = 0x10;
/// `AnyValue.int_value` (field 3, varint).
const INT_TAG: u8 = 0x18;
/// `AnyValue.double_value` (field 4, fixed64).
const DOUBLE_TAG: u8 = 0x21;

/// `buf` as `key` and `value` with one-byte lengths, the value one string, bool,
/// int or double, and nothing else; `None` for any other bytes.
#[inline(always)]
pub(super) fn read(buf: &[u8]) -> Option<Attr<'_>> {
    let (key, rest) = field(buf, KEY_TAG)?;
    let (value, rest) = field(rest, VALUE_TAG)?;
    if !rest.is_empty() {
        return None;
    }
    Some(Attr {
        key: utf8(key)?,
        value: Some(scalar(value)?),
    })
}

/// An `AnyValue` holding exactly one scalar.
#[inline(always)]
fn scalar(buf: &[u8]) -> Option<Any<'_>> {
    match *buf.first()? {
        STRING_TAG => match field(buf, STRING_TAG)? {
            (s, []) => Some(Any::Str(utf8(s)?)),
            _ => None,
        },
        BOOL_TAG => match buf {
            [_, b] if *b < 0x80 => Some(Any::Bool(*b != 0)),
            _ => None,
        },
        INT_TAG => short_varint(&buf[1..]).map(|v| Any::Int(v as i64)),
        DOUBLE_TAG => match buf {
            [_, bits @ ..] => Some(Any::Double(f64::from_bits(u64::from_le_bytes(bits.try_into().ok()?)))),
            [] => None,
        },
        _ => None,
    }
}

/// A varint of one or two bytes that fills `buf` exactly (counts and
/// milliseconds); longer ones are left to the general reader.
#[inline(always)]
fn short_varint(buf: &[u8]) -> Option<u64> {
    match *buf {
        [b] if b < 0x80 => Some(u64::from(b)),
        [lo, hi] if lo >= 0x80 && hi < 0x80 => Some(u64::from(lo & 0x7f) | u64::from(hi) << 7),
        _ => None,
    }
}

#[cfg(test)]
#[path = "plain_attr_tests.rs"]
mod tests;
