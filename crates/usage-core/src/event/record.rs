//! Events whose kind is only known at run time (decoded by the gateway or from files).

use super::kind::EventData;
use super::schema::{FieldType, Schema};
use super::value::{finite_or_zero, OwnedValue, Value};
use std::any::Any;
use std::sync::Arc;

/// A dynamically typed event: a shared schema and one value per field.
///
/// ```
/// use std::sync::Arc;
/// use usage_core::{kind_schema, Event, OwnedValue, Record};
/// let schema = Arc::new(kind_schema("network_event").unwrap().clone());
/// let rec = Record::new(schema, vec![
///     OwnedValue::Str("stream_started".into()),
///     OwnedValue::Str("s-1".into()),
///     OwnedValue::Str("ingest".into()),
///     OwnedValue::StrMap(vec![]),
///     OwnedValue::Null,
/// ]).unwrap();
/// assert_eq!(Event::from_record(rec).kind(), "network_event");
/// ```
#[derive(Debug, Clone)]
pub struct Record {
    schema: Arc<Schema>,
    values: Vec<OwnedValue>,
    /// Heap bytes, counted once: queues and batches ask for every event's size.
    heap: usize,
}

impl PartialEq for Record {
    fn eq(&self, other: &Self) -> bool {
        self.schema == other.schema && self.values == other.values
    }
}

/// Why a [`Record`] does not match its schema; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Wrong number of values.
    #[error("kind `{kind}` has {expected} fields, got {got} values")]
    Arity {
        /// Kind name.
        kind: String,
        /// Fields in the schema.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// A value of the wrong type.
    #[error("field `{field}` of kind `{kind}` must be {expected}, got {got}")]
    Type {
        /// Kind name.
        kind: String,
        /// Field name.
        field: String,
        /// Declared type.
        expected: &'static str,
        /// What was given.
        got: &'static str,
    },
}

impl Record {
    /// Checks values against the schema (count, types, nullability). Non-finite
    /// floats become 0; an `I64` that is non-negative is accepted for a `u64` field
    /// and a `U64` that fits is accepted for an `i64` field.
    pub fn new(schema: Arc<Schema>, mut values: Vec<OwnedValue>) -> Result<Self, RecordError> {
        if values.len() != schema.fields.len() {
            return Err(RecordError::Arity {
                kind: schema.kind.to_string(),
                expected: schema.fields.len(),
                got: values.len(),
            });
        }
        for (def, v) in schema.fields.iter().zip(values.iter_mut()) {
            let coerced = match (def.ty, &*v) {
                (_, OwnedValue::Null) if def.nullable => continue,
                (FieldType::U64, OwnedValue::I64(i)) if *i >= 0 => Some(OwnedValue::U64(*i as u64)),
                (FieldType::I64, OwnedValue::U64(u)) if i64::try_from(*u).is_ok() => Some(OwnedValue::I64(*u as i64)),
                (FieldType::F64, OwnedValue::I64(i)) => Some(OwnedValue::F64(*i as f64)),
                (FieldType::F64, OwnedValue::U64(u)) => Some(OwnedValue::F64(*u as f64)),
                (FieldType::F64, OwnedValue::F64(f)) => Some(OwnedValue::F64(finite_or_zero(*f))),
                (ty, val) if val.as_value().field_type() == Some(ty) => None,
                (ty, val) => {
                    return Err(RecordError::Type {
                        kind: schema.kind.to_string(),
                        field: def.name.to_string(),
                        expected: if def.nullable { nullable_name(ty) } else { ty.name() },
                        got: val.as_value().field_type().map_or("null", |t| t.name()),
                    })
                }
            };
            if let Some(c) = coerced {
                *v = c;
            }
        }
        let heap = values.capacity() * std::mem::size_of::<OwnedValue>()
            + values.iter().map(OwnedValue::heap_bytes).sum::<usize>();
        Ok(Record { schema, values, heap })
    }

    /// The record's schema.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// Values in schema order.
    pub fn values(&self) -> &[OwnedValue] {
        &self.values
    }
}

fn nullable_name(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Str => "string or null",
        FieldType::I64 => "i64 or null",
        FieldType::U64 => "u64 or null",
        FieldType::F64 => "f64 or null",
        FieldType::Bool => "bool or null",
        FieldType::StrMap => "map<string,string> or null",
    }
}

impl EventData for Record {
    fn dyn_schema(&self) -> &Schema {
        &self.schema
    }
    fn shared_schema(&self) -> Option<&Arc<Schema>> {
        Some(&self.schema)
    }
    fn visit<'a>(&'a self, f: &mut dyn FnMut(Value<'a>)) {
        for v in &self.values {
            f(v.as_value());
        }
    }
    fn heap_bytes(&self) -> usize {
        self.heap
    }
    fn clone_boxed(&self) -> Box<dyn EventData> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventKind, RelayUsage};

    fn relay_schema() -> Arc<Schema> {
        Arc::new(RelayUsage::schema().clone())
    }

    #[test]
    fn type_errors_name_the_field_and_types() {
        let mut vals: Vec<OwnedValue> = RelayUsage::schema()
            .fields
            .iter()
            .map(|f| match f.ty {
                FieldType::Str => OwnedValue::Str("x".into()),
                FieldType::U64 => OwnedValue::U64(1),
                FieldType::Bool => OwnedValue::Bool(true),
                _ => OwnedValue::Null,
            })
            .collect();
        assert!(Record::new(relay_schema(), vals.clone()).is_ok());
        vals[4] = OwnedValue::Str("ten".into());
        let e = Record::new(relay_schema(), vals).unwrap_err().to_string();
        assert_eq!(e, "field `cu` of kind `relay_usage` must be u64, got string");
    }

    #[test]
    fn arity_is_checked() {
        let e = Record::new(relay_schema(), vec![]).unwrap_err();
        assert!(matches!(
            e,
            RecordError::Arity {
                expected: 15,
                got: 0,
                ..
            }
        ));
    }
}
