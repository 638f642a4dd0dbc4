//! A record's attributes sorted into its schema's fields, and its values by the
//! receive rules.

use super::schemas::KindSchema;
use super::view::{Any, Attr};
use crate::ID_ATTRIBUTE;
use usage_core::receive::{absent_value, coerce_with, NameKey, Received as Scalar, RejectReason};
use usage_core::{FieldType, Schema, Text, Value};

/// A record's attributes sorted into the schema's fields.
#[derive(Default)]
pub(super) struct Slots<'a> {
    fields: Vec<Option<Any<'a>>>,
    /// (map field, key, value) for `<field>.<key>` attributes.
    map_entries: Vec<(usize, &'a str, &'a str)>,
    pub(super) id: Option<Any<'a>>,
}

impl<'a> Slots<'a> {
    /// Sorts one record's attributes, reusing the buffers of the previous record.
    pub(super) fn fill(&mut self, kind: &KindSchema, attributes: &[Attr<'a>]) {
        let fields = &kind.schema.fields;
        self.fields.clear();
        self.fields.resize(fields.len(), None);
        self.map_entries.clear();
        self.id = None;
        let id_key = NameKey::of(ID_ATTRIBUTE);
        let names = &kind.names;
        // The `otlp` exporter writes attributes in schema order: try the next field first.
        let mut next = 0;
        for kv in attributes {
            let Some(v) = kv.value else {
                continue;
            };
            let key = kv.key;
            let k = NameKey::of(key);
            if id_key.matches(k, ID_ATTRIBUTE, key) {
                self.id = Some(v);
                continue;
            }
            let is = |i: usize| names[i].matches(k, &fields[i].name, key);
            let index = if next < names.len() && is(next) {
                Some(next)
            } else {
                (0..names.len()).find(|&i| is(i))
            };
            if let Some(i) = index {
                self.fields[i] = Some(v);
                next = i + 1;
                continue;
            }
            for &m in &kind.map_fields {
                let entry = key
                    .strip_prefix(fields[m].name.as_ref())
                    .and_then(|r| r.strip_prefix('.'));
                if let (Some(k), Any::Str(s)) = (entry, v) {
                    self.map_entries.push((m, k, s));
                    break;
                }
            }
        }
    }

    /// The schema's values, in order, to `out`: absent attributes by the receive
    /// rule, types by the lossless coercions (`usage_core::receive`); errors name
    /// the attribute.
    pub(super) fn each_value(
        &self,
        schema: &Schema,
        mut out: impl FnMut(Value<'_>) -> Result<(), (RejectReason, String)>,
    ) -> Result<(), (RejectReason, String)> {
        for (i, f) in schema.fields.iter().enumerate() {
            let name = f.name.as_ref();
            if f.ty == FieldType::StrMap {
                let mut m: Vec<(Text, Text)> = self
                    .map_entries
                    .iter()
                    .filter(|(field, ..)| *field == i)
                    .map(|(_, k, v)| (Text::new(k), Text::new(v)))
                    .collect();
                m.sort();
                out(Value::StrMap(&m))?;
                continue;
            }
            match self.fields[i] {
                None => {
                    let absent = absent_value(&schema.kind, f).ok_or_else(|| {
                        (
                            RejectReason::MissingField,
                            format!("attribute `{name}` ({}) is missing", f.ty),
                        )
                    })?;
                    out(absent.as_value())?;
                }
                Some(v) => {
                    // A value of the field's own type, as SDKs send them: no coercion.
                    if let Some(exact) = exact_value(f.ty, v) {
                        out(exact)?;
                        continue;
                    }
                    let scalar = match v {
                        Any::Str(s) => Some(Scalar::Str(s)),
                        Any::Int(i) => Some(Scalar::Int(i)),
                        Any::Double(d) => Some(Scalar::Double(d)),
                        Any::Bool(b) => Some(Scalar::Bool(b)),
                        Any::Other(_) => None,
                    };
                    scalar.and_then(|s| coerce_with(f.ty, s, &mut out)).ok_or_else(|| {
                        (
                            RejectReason::WrongType,
                            format!("attribute `{name}` must be {}, got {}", f.ty, av_type(v)),
                        )
                    })??;
                }
            }
        }
        Ok(())
    }
}

/// `v` as field type `ty` when it already is one (what `coerce_with` makes of it
/// then); `None` when it needs coercing or cannot be had.
#[inline(always)]
fn exact_value(ty: FieldType, v: Any<'_>) -> Option<Value<'_>> {
    Some(match (ty, v) {
        (FieldType::Str, Any::Str(s)) => Value::Str(s),
        (FieldType::I64, Any::Int(i)) => Value::I64(i),
        (FieldType::U64, Any::Int(i)) if i >= 0 => Value::U64(i as u64),
        (FieldType::Bool, Any::Bool(b)) => Value::Bool(b),
        _ => return None,
    })
}

fn av_type(v: Any<'_>) -> &'static str {
    match v {
        Any::Str(_) => "a string",
        Any::Bool(_) => "a bool",
        Any::Int(_) => "an int",
        Any::Double(_) => "a double",
        Any::Other(name) => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use usage_core::OwnedValue;

    /// The shortcut makes exactly what the general coercion makes, wherever it answers.
    #[test]
    fn exact_values_are_what_coercion_makes_of_them() {
        let types = [
            FieldType::Str,
            FieldType::I64,
            FieldType::U64,
            FieldType::F64,
            FieldType::Bool,
        ];
        let values = [
            Any::Str("abc"),
            Any::Str("17"),
            Any::Int(-3),
            Any::Int(0),
            Any::Int(i64::MAX),
            Any::Double(2.0),
            Any::Bool(true),
        ];
        let mut answered = 0;
        for ty in types {
            for v in values {
                let Some(exact) = exact_value(ty, v) else { continue };
                answered += 1;
                let scalar = match v {
                    Any::Str(s) => Scalar::Str(s),
                    Any::Int(i) => Scalar::Int(i),
                    Any::Double(d) => Scalar::Double(d),
                    Any::Bool(b) => Scalar::Bool(b),
                    Any::Other(_) => unreachable!("not in the list"),
                };
                let coerced: Option<OwnedValue> = coerce_with(ty, scalar, |v| v.to_owned_value());
                assert_eq!(Some(exact.to_owned_value()), coerced, "{ty} from {}", av_type(v));
            }
        }
        assert_eq!(
            answered, 8,
            "Str from 2 strings, I64 from 3 ints, U64 from 2, Bool from 1"
        );
    }
}
