//! `KeyValue` and `AnyValue` bytes read in place: the plain shape SDKs write by
//! [`plain_attr`], anything else field by field.

use super::plain_attr;
use super::view::{Any, Attr};
use super::wire::{self, Fields, WireError, MAX_DEPTH};

// How values an event cannot hold are named in errors.
pub(crate) const ARRAY: &str = "an array";
pub(crate) const MAP: &str = "a map";
pub(crate) const BYTES: &str = "bytes";
pub(crate) const UNSUPPORTED: &str = "an unsupported value";

/// A `KeyValue` at `depth` levels of nesting.
pub(super) fn key_value(buf: &[u8], base: usize, depth: u32) -> Result<Attr<'_>, WireError> {
    let mut attr = Attr { key: "", value: None };
    read_key_value(&mut attr, buf, base, depth)?;
    Ok(attr)
}

/// A `KeyValue` into `attr` (which starts empty).
#[inline(always)]
pub(super) fn read_key_value<'a>(attr: &mut Attr<'a>, buf: &'a [u8], base: usize, depth: u32) -> Result<(), WireError> {
    // The value below is one level deeper: past the limit the general walker says so.
    if depth + 1 < MAX_DEPTH {
        if let Some(plain) = plain_attr::read(buf) {
            *attr = plain;
            return Ok(());
        }
    }
    read_key_value_walked(attr, buf, base, depth)
}

/// [`read_key_value`] field by field: any `KeyValue` at all.
#[inline(always)]
pub(super) fn read_key_value_walked<'a>(
    attr: &mut Attr<'a>,
    buf: &'a [u8],
    base: usize,
    depth: u32,
) -> Result<(), WireError> {
    let mut f = Fields::new(buf, base);
    while let Some((n, w, at)) = f.next_field()? {
        match n {
            1 => attr.key = wire::string(w, "KeyValue.key", at)?,
            2 => {
                if let Some(v) = any_value(wire::bytes(w, "KeyValue.value", at)?, at, depth + 1)? {
                    attr.value = Some(v);
                }
            }
            3 => {
                wire::varint(w, "KeyValue.key_strindex", at)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// An `AnyValue`; nested arrays and maps are checked, then only named.
#[inline(always)]
pub(super) fn any_value(buf: &[u8], base: usize, depth: u32) -> Result<Option<Any<'_>>, WireError> {
    if depth >= MAX_DEPTH {
        return Err(WireError(format!("values nested too deep at byte {base}")));
    }
    let mut value = None;
    let mut f = Fields::new(buf, base);
    while let Some((n, w, at)) = f.next_field()? {
        value = match n {
            1 => Some(Any::Str(wire::string(w, "AnyValue.string_value", at)?)),
            2 => Some(Any::Bool(wire::varint(w, "AnyValue.bool_value", at)? != 0)),
            3 => Some(Any::Int(wire::varint(w, "AnyValue.int_value", at)? as i64)),
            4 => Some(Any::Double(f64::from_bits(wire::fixed64(
                w,
                "AnyValue.double_value",
                at,
            )?))),
            5 => {
                list(wire::bytes(w, "AnyValue.array_value", at)?, at, depth, false)?;
                Some(Any::Other(ARRAY))
            }
            6 => {
                list(wire::bytes(w, "AnyValue.kvlist_value", at)?, at, depth, true)?;
                Some(Any::Other(MAP))
            }
            7 => {
                wire::bytes(w, "AnyValue.bytes_value", at)?;
                Some(Any::Other(BYTES))
            }
            8 => {
                wire::varint(w, "AnyValue.string_value_strindex", at)?;
                Some(Any::Other(UNSUPPORTED))
            }
            _ => value,
        };
    }
    Ok(value)
}

/// An `ArrayValue` (of `AnyValue`) or a `KeyValueList` (of `KeyValue`), checked.
#[inline(never)]
fn list(buf: &[u8], base: usize, depth: u32, keyed: bool) -> Result<(), WireError> {
    let mut f = Fields::new(buf, base);
    while let Some((n, w, at)) = f.next_field()? {
        if n == 1 {
            if keyed {
                key_value(wire::bytes(w, "KeyValueList.values", at)?, at, depth + 1)?;
            } else {
                any_value(wire::bytes(w, "ArrayValue.values", at)?, at, depth + 1)?;
            }
        }
    }
    Ok(())
}
