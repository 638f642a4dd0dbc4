//! Field values: the borrowed view encoders read, the owned form dynamic records
//! hold, and the `FieldValue` trait mapping Rust field types to schema types.

use super::schema::FieldType;
pub use super::text::Text;

/// An ordered string-to-string map (e.g. `network_event.attributes`).
pub type StrMap = Vec<(Text, Text)>;

/// A borrowed field value, as visited by encoders.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// Null (absent optional field).
    Null,
    /// Text.
    Str(&'a str),
    /// Signed integer.
    I64(i64),
    /// Unsigned integer.
    U64(u64),
    /// Finite float.
    F64(f64),
    /// Boolean.
    Bool(bool),
    /// String map.
    StrMap(&'a [(Text, Text)]),
}

impl Value<'_> {
    /// The value's type, or `None` for null.
    pub fn field_type(&self) -> Option<FieldType> {
        Some(match self {
            Value::Null => return None,
            Value::Str(_) => FieldType::Str,
            Value::I64(_) => FieldType::I64,
            Value::U64(_) => FieldType::U64,
            Value::F64(_) => FieldType::F64,
            Value::Bool(_) => FieldType::Bool,
            Value::StrMap(_) => FieldType::StrMap,
        })
    }

    /// Converts to an owned value.
    pub fn to_owned_value(&self) -> OwnedValue {
        match *self {
            Value::Null => OwnedValue::Null,
            Value::Str(s) => OwnedValue::Str(Text::new(s)),
            Value::I64(v) => OwnedValue::I64(v),
            Value::U64(v) => OwnedValue::U64(v),
            Value::F64(v) => OwnedValue::F64(v),
            Value::Bool(v) => OwnedValue::Bool(v),
            Value::StrMap(m) => OwnedValue::StrMap(m.to_vec()),
        }
    }
}

/// An owned field value, used by [`Record`](crate::Record) for kinds decoded at run time.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedValue {
    /// Null.
    Null,
    /// Text.
    Str(Text),
    /// Signed integer.
    I64(i64),
    /// Unsigned integer.
    U64(u64),
    /// Float (sanitised: never NaN or infinite once in a record).
    F64(f64),
    /// Boolean.
    Bool(bool),
    /// String map.
    StrMap(StrMap),
}

impl OwnedValue {
    /// Borrows as a [`Value`].
    pub fn as_value(&self) -> Value<'_> {
        match self {
            OwnedValue::Null => Value::Null,
            OwnedValue::Str(s) => Value::Str(s),
            OwnedValue::I64(v) => Value::I64(*v),
            OwnedValue::U64(v) => Value::U64(*v),
            OwnedValue::F64(v) => Value::F64(*v),
            OwnedValue::Bool(v) => Value::Bool(*v),
            OwnedValue::StrMap(m) => Value::StrMap(m),
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            OwnedValue::Str(s) => text_heap_bytes(s),
            OwnedValue::StrMap(m) => str_map_heap_bytes(m),
            _ => 0,
        }
    }
}

/// Replaces NaN and ±Inf with 0: neither JSON nor billing arithmetic can carry them.
#[inline]
pub fn finite_or_zero(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

#[inline]
pub(crate) fn text_heap_bytes(s: &Text) -> usize {
    if s.is_heap_allocated() {
        s.len()
    } else {
        0
    }
}

pub(crate) fn str_map_heap_bytes(m: &StrMap) -> usize {
    m.capacity() * std::mem::size_of::<(Text, Text)>()
        + m.iter()
            .map(|(k, v)| text_heap_bytes(k) + text_heap_bytes(v))
            .sum::<usize>()
}

/// A Rust type usable as an event field. Implemented for [`Text`], `String`, the
/// integer and float types, `bool`, [`StrMap`] and `Option` of each.
pub trait FieldValue {
    /// The schema type of the field.
    const TYPE: FieldType;
    /// Whether the field is nullable (true only for `Option`).
    const NULLABLE: bool = false;
    /// Borrows the value for encoding.
    fn value(&self) -> Value<'_>;
    /// Heap bytes owned by the value (for the queue's byte bound).
    fn heap_bytes(&self) -> usize {
        0
    }
    /// Normalises the value when the event is built (non-finite floats become 0).
    fn sanitize(&mut self) {}
}

impl FieldValue for Text {
    const TYPE: FieldType = FieldType::Str;
    fn value(&self) -> Value<'_> {
        Value::Str(self)
    }
    fn heap_bytes(&self) -> usize {
        text_heap_bytes(self)
    }
}

impl FieldValue for String {
    const TYPE: FieldType = FieldType::Str;
    fn value(&self) -> Value<'_> {
        Value::Str(self)
    }
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}

impl FieldValue for StrMap {
    const TYPE: FieldType = FieldType::StrMap;
    fn value(&self) -> Value<'_> {
        Value::StrMap(self)
    }
    fn heap_bytes(&self) -> usize {
        str_map_heap_bytes(self)
    }
}

impl FieldValue for bool {
    const TYPE: FieldType = FieldType::Bool;
    fn value(&self) -> Value<'_> {
        Value::Bool(*self)
    }
}

impl FieldValue for f64 {
    const TYPE: FieldType = FieldType::F64;
    fn value(&self) -> Value<'_> {
        Value::F64(*self)
    }
    fn sanitize(&mut self) {
        *self = finite_or_zero(*self);
    }
}

impl FieldValue for f32 {
    const TYPE: FieldType = FieldType::F64;
    fn value(&self) -> Value<'_> {
        Value::F64(f64::from(*self))
    }
    fn sanitize(&mut self) {
        if !self.is_finite() {
            *self = 0.0;
        }
    }
}

macro_rules! int_field_value {
    ($variant:ident, $wide:ty: $($t:ty),*) => {$(
        impl FieldValue for $t {
            const TYPE: FieldType = FieldType::$variant;
            fn value(&self) -> Value<'_> {
                Value::$variant(<$wide>::from(*self))
            }
        }
    )*};
}
int_field_value!(U64, u64: u8, u16, u32, u64);
int_field_value!(I64, i64: i8, i16, i32, i64);

impl<T: FieldValue> FieldValue for Option<T> {
    const TYPE: FieldType = T::TYPE;
    const NULLABLE: bool = true;
    fn value(&self) -> Value<'_> {
        match self {
            Some(v) => v.value(),
            None => Value::Null,
        }
    }
    fn heap_bytes(&self) -> usize {
        self.as_ref().map_or(0, T::heap_bytes)
    }
    fn sanitize(&mut self) {
        if let Some(v) = self {
            v.sanitize();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_is_nullable_and_maps_none_to_null() {
        const { assert!(<Option<u32> as FieldValue>::NULLABLE) };
        assert_eq!(<Option<u32> as FieldValue>::TYPE, FieldType::U64);
        assert_eq!(None::<u32>.value(), Value::Null);
        assert_eq!(Some(7u32).value(), Value::U64(7));
    }

    #[test]
    fn sanitize_zeroes_non_finite_floats() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut v = bad;
            v.sanitize();
            assert_eq!(v, 0.0);
            let mut o = Some(bad);
            o.sanitize();
            assert_eq!(o, Some(0.0));
        }
        let mut ok = 1.5f64;
        ok.sanitize();
        assert_eq!(ok, 1.5);
    }

    #[test]
    fn heap_bytes_counts_only_spilled_text() {
        assert_eq!(Text::new("short").heap_bytes(), 0);
        assert_eq!(Text::new("a".repeat(47)).heap_bytes(), 0, "47 bytes fit inline");
        let long = Text::new("a".repeat(48));
        assert_eq!(long.heap_bytes(), 48);
    }
}
