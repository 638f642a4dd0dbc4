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

fn av_type(v: Any<'_>) -> &'static str {
    match v {
        Any::Str(_) => "a string",
        Any::Bool(_) => "a bool",
        Any::Int(_) => "an int",
        Any::Double(_) => "a double",
        Any::Other(name) => name,
    }
}
