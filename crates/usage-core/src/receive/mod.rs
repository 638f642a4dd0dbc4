//! What a receiver (the gateway's OTLP and JSON paths) accepts for a field: the
//! lossless coercions between wire types, and what fills a field a producer left out.
//! `docs/encoding.md` ("Receiving") lists both rules; tests below hold every row.

mod ascii;
mod name_key;

pub use ascii::{is_ascii, utf8};
pub use name_key::NameKey;

use crate::event::schema::{FieldDef, FieldType};
use crate::event::value::{finite_or_zero, OwnedValue, Text, Value};

/// A scalar as a producer sent it (an OTLP `AnyValue` or a JSON value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Received<'a> {
    /// A string.
    Str(&'a str),
    /// A signed integer (OTLP `int_value`, a JSON integer that fits in i64).
    Int(i64),
    /// An unsigned integer above `i64::MAX` (JSON only).
    UInt(u64),
    /// A float (OTLP `double_value`, a JSON number with a fraction or exponent).
    Double(f64),
    /// A boolean.
    Bool(bool),
}

/// Why a receiver refused one record (the rest of its request is still taken).
/// [`RejectReason::as_str`] is the `reason` label of the gateway's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The record's bytes cannot be read (a malformed protobuf record or JSON event).
    Malformed,
    /// No event kind: the OTLP body is not a string, or a JSON event names no kind.
    NoKind,
    /// A kind this binary has no schema for (and unknown kinds are not allowed).
    UnknownKind,
    /// A required field is absent.
    MissingField,
    /// A field's value does not convert losslessly to the field's type.
    WrongType,
    /// The event id is not a UUID.
    BadId,
    /// The event time cannot be read.
    BadTime,
    /// The event's project differs from the one the API key is bound to.
    Project,
    /// The record exceeds a limit: attributes, string bytes or decoded size.
    TooLarge,
    /// A kind or field name (of a kind this binary infers) is not a valid name
    /// ([`is_valid_name`](crate::is_valid_name)) or is reserved for the envelope.
    BadName,
}

impl RejectReason {
    /// Every reason, in label order.
    pub const ALL: [RejectReason; 10] = [
        RejectReason::Malformed,
        RejectReason::NoKind,
        RejectReason::UnknownKind,
        RejectReason::MissingField,
        RejectReason::WrongType,
        RejectReason::BadId,
        RejectReason::BadTime,
        RejectReason::Project,
        RejectReason::TooLarge,
        RejectReason::BadName,
    ];

    /// The snake_case label.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::NoKind => "no_kind",
            RejectReason::UnknownKind => "unknown_kind",
            RejectReason::MissingField => "missing_field",
            RejectReason::WrongType => "wrong_type",
            RejectReason::BadId => "bad_id",
            RejectReason::BadTime => "bad_time",
            RejectReason::Project => "project",
            RejectReason::TooLarge => "too_large",
            RejectReason::BadName => "bad_name",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one record may cost a receiver. Each is checked before or while the record
/// is read, so a record over a limit is refused alone ([`RejectReason::TooLarge`])
/// before it costs memory in proportion to what it claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimits {
    /// Attributes (fields) per record.
    pub max_attributes: usize,
    /// Bytes per string (keys and values).
    pub max_string_bytes: usize,
    /// Memory a JSON record's parsed tree may take, estimated from its structure
    /// (the bound `json::decoded_bytes_bound` computes).
    pub max_decode_bytes: usize,
}

impl Default for RecordLimits {
    /// No limits.
    fn default() -> Self {
        RecordLimits {
            max_attributes: usize::MAX,
            max_string_bytes: usize::MAX,
            max_decode_bytes: usize::MAX,
        }
    }
}

impl RecordLimits {
    /// `Err` naming the problem when a record has more attributes than allowed.
    pub fn check_attributes(&self, n: usize) -> Result<(), String> {
        if n > self.max_attributes {
            return Err(format!(
                "more than {} attributes (gateway.max_attributes)",
                self.max_attributes
            ));
        }
        Ok(())
    }

    /// `Err` naming the problem when a string is longer than allowed. `what` is
    /// formatted only then: pass `format_args!(...)`, since this runs for every
    /// string of every record.
    pub fn check_string(&self, what: impl std::fmt::Display, s: &str) -> Result<(), String> {
        if s.len() > self.max_string_bytes {
            return Err(format!(
                "{what} is {} bytes, more than {} (gateway.max_string_bytes)",
                s.len(),
                self.max_string_bytes
            ));
        }
        Ok(())
    }
}

/// Largest integer every f64 holds exactly (2^53).
const F64_EXACT: u64 = 1 << 53;

/// The value for a field of type `ty`, when `v` converts without losing anything:
///
/// | field | accepts |
/// |---|---|
/// | string | a string; an integer as its decimal; a bool as `true`/`false` |
/// | i64 | an integer in range; a float with no fraction in range; a decimal string |
/// | u64 | a non-negative integer; a float with no fraction in range; a decimal string |
/// | f64 | a float; an integer of magnitude at most 2^53 (exact in f64) |
/// | bool | a bool |
///
/// Anything else is `None`: the record is rejected, naming the field.
///
/// ```
/// use usage_core::receive::{coerce, Received};
/// use usage_core::{FieldType, OwnedValue};
/// assert_eq!(coerce(FieldType::Str, Received::Int(3)), Some(OwnedValue::Str("3".into())));
/// assert_eq!(coerce(FieldType::F64, Received::Int(7)), Some(OwnedValue::F64(7.0)));
/// assert_eq!(coerce(FieldType::U64, Received::Int(-1)), None);
/// assert_eq!(coerce(FieldType::I64, Received::Double(2.5)), None);
/// ```
#[inline]
pub fn coerce(ty: FieldType, v: Received<'_>) -> Option<OwnedValue> {
    coerce_with(ty, v, |v| v.to_owned_value())
}

/// [`coerce`], handing the value to `f` borrowed (a string is not copied, an
/// integer written as a string is formatted on the stack): for a receiver that
/// writes the value somewhere at once.
///
/// ```
/// use usage_core::receive::{coerce_with, Received};
/// use usage_core::{FieldType, Value};
/// let len = coerce_with(FieldType::Str, Received::Int(-42), |v| match v {
///     Value::Str(s) => s.len(),
///     _ => 0,
/// });
/// assert_eq!(len, Some(3));
/// assert_eq!(coerce_with(FieldType::Bool, Received::Int(1), |_| ()), None);
/// ```
#[inline]
pub fn coerce_with<T>(ty: FieldType, v: Received<'_>, f: impl FnOnce(Value<'_>) -> T) -> Option<T> {
    use Received as R;
    let mut digits = itoa::Buffer::new();
    let value = match (ty, v) {
        (FieldType::Str, R::Str(s)) => Value::Str(s),
        (FieldType::Str, R::Int(i)) => Value::Str(digits.format(i)),
        (FieldType::Str, R::UInt(u)) => Value::Str(digits.format(u)),
        (FieldType::Str, R::Bool(b)) => Value::Str(if b { "true" } else { "false" }),
        (FieldType::I64, R::Int(i)) => Value::I64(i),
        (FieldType::I64, R::UInt(u)) => Value::I64(i64::try_from(u).ok()?),
        (FieldType::I64, R::Double(d)) if d.fract() == 0.0 && (-9.2e18..9.2e18).contains(&d) => Value::I64(d as i64),
        (FieldType::I64, R::Str(s)) => Value::I64(s.parse().ok()?),
        (FieldType::U64, R::Int(i)) => Value::U64(u64::try_from(i).ok()?),
        (FieldType::U64, R::UInt(u)) => Value::U64(u),
        (FieldType::U64, R::Double(d)) if d.fract() == 0.0 && (0.0..1.8e19).contains(&d) => Value::U64(d as u64),
        (FieldType::U64, R::Str(s)) => Value::U64(s.parse().ok()?),
        (FieldType::F64, R::Double(d)) => Value::F64(finite_or_zero(d)),
        (FieldType::F64, R::Int(i)) if i.unsigned_abs() <= F64_EXACT => Value::F64(i as f64),
        (FieldType::F64, R::UInt(u)) if u <= F64_EXACT => Value::F64(u as f64),
        (FieldType::Bool, R::Bool(b)) => Value::Bool(b),
        _ => return None,
    };
    Some(f(value))
}

/// Fields of the built-in kinds a record may not leave out: what a bill is computed
/// from (`relay_usage`), or what identifies a sample or a trace.
const REQUIRED_BUILTIN: [(&str, &[&str]); 3] = [
    ("relay_usage", &["project", "chain", "cu"]),
    ("optimizer_qos", &["provider", "chain_id"]),
    ("network_event", &["event_type"]),
];

/// What fills `def` when a producer left it out, or `None` when the record must be
/// rejected instead. A nullable field is null. A field of a built-in kind that is not
/// required (see `docs/encoding.md`) takes its empty value (empty string, 0, false,
/// empty map): producers such as Lava's omit empty attributes like `origin`. The
/// required ones (`relay_usage`: project, chain, cu; `optimizer_qos`: provider,
/// chain_id; `network_event`: event_type) and every field of a custom kind are
/// never filled: a billing field is never silently zero.
///
/// ```
/// use usage_core::receive::absent_value;
/// use usage_core::{kind_schema, OwnedValue};
/// let relay = kind_schema("relay_usage").unwrap();
/// assert_eq!(absent_value(&relay.kind, relay.field("origin").unwrap()), Some(OwnedValue::Str("".into())));
/// assert_eq!(absent_value(&relay.kind, relay.field("cu").unwrap()), None);
/// ```
pub fn absent_value(kind: &str, def: &FieldDef) -> Option<OwnedValue> {
    if def.nullable {
        return Some(OwnedValue::Null);
    }
    let (_, required) = REQUIRED_BUILTIN.iter().find(|(k, _)| *k == kind)?;
    if required.contains(&def.name.as_ref()) {
        return None;
    }
    Some(match def.ty {
        FieldType::Str => OwnedValue::Str(Text::default()),
        FieldType::I64 => OwnedValue::I64(0),
        FieldType::U64 => OwnedValue::U64(0),
        FieldType::F64 => OwnedValue::F64(0.0),
        FieldType::Bool => OwnedValue::Bool(false),
        FieldType::StrMap => OwnedValue::StrMap(Vec::new()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{kind_schema, FieldType as T, OwnedValue as V};
    use Received as R;

    #[test]
    fn every_coercion_row() {
        let s = |x: &str| Some(V::Str(x.into()));
        let rows: Vec<(T, Received, Option<V>)> = vec![
            (T::Str, R::Str("a"), s("a")),
            (T::Str, R::Int(-12), s("-12")),
            (T::Str, R::UInt(u64::MAX), s("18446744073709551615")),
            (T::Str, R::Bool(true), s("true")),
            (T::Str, R::Double(1.5), None),
            (T::I64, R::Int(i64::MIN), Some(V::I64(i64::MIN))),
            (T::I64, R::UInt(u64::MAX), None),
            (T::I64, R::Double(-3.0), Some(V::I64(-3))),
            (T::I64, R::Double(3.5), None),
            (T::I64, R::Double(f64::NAN), None),
            (T::I64, R::Str("-42"), Some(V::I64(-42))),
            (T::I64, R::Str("4x"), None),
            (T::I64, R::Bool(true), None),
            (T::U64, R::Int(0), Some(V::U64(0))),
            (T::U64, R::Int(-1), None),
            (T::U64, R::UInt(u64::MAX), Some(V::U64(u64::MAX))),
            (T::U64, R::Double(10.0), Some(V::U64(10))),
            (T::U64, R::Double(-1.0), None),
            (T::U64, R::Double(f64::INFINITY), None),
            (T::U64, R::Str("18446744073709551615"), Some(V::U64(u64::MAX))),
            (T::U64, R::Str("-1"), None),
            (T::F64, R::Double(0.25), Some(V::F64(0.25))),
            (T::F64, R::Int(1 << 53), Some(V::F64(9_007_199_254_740_992.0))),
            (T::F64, R::Int((1 << 53) + 1), None),
            (T::F64, R::Int(-(1 << 53)), Some(V::F64(-9_007_199_254_740_992.0))),
            (T::F64, R::UInt(u64::MAX), None),
            (T::F64, R::Str("1.0"), None),
            (T::Bool, R::Bool(false), Some(V::Bool(false))),
            (T::Bool, R::Int(1), None),
            (T::Bool, R::Str("true"), None),
            (T::StrMap, R::Str("x"), None),
        ];
        for (ty, v, want) in rows {
            assert_eq!(coerce(ty, v), want, "{v:?} into {ty}");
        }
    }

    #[test]
    fn absent_fields_of_builtin_kinds() {
        let relay = kind_schema("relay_usage").unwrap();
        for f in relay.fields.iter() {
            let got = absent_value(&relay.kind, f);
            match f.name.as_ref() {
                "project" | "chain" | "cu" => assert_eq!(got, None, "{}", f.name),
                _ => assert!(got.is_some(), "{}", f.name),
            }
        }
        let qos = kind_schema("optimizer_qos").unwrap();
        assert_eq!(
            absent_value(&qos.kind, qos.field("geo_location").unwrap()),
            Some(V::I64(0))
        );
        assert_eq!(absent_value(&qos.kind, qos.field("chain_id").unwrap()), None);
        let custom = FieldDef::new("n", T::U64, false);
        assert_eq!(absent_value("gpu_seconds", &custom), None);
        let nullable = FieldDef::new("n", T::U64, true);
        assert_eq!(absent_value("gpu_seconds", &nullable), Some(V::Null));
    }
}
