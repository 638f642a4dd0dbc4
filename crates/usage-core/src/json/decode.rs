//! JSON events back into [`Event`]s: the envelope, each field checked against its
//! kind's schema (or a schema inferred for unknown kinds), within record limits.

use super::shape::within_decode_budget;
use crate::event::id::EventId;
use crate::event::kind::kind_schema;
use crate::event::record::{Record, RecordError};
use crate::event::resource::Resource;
use crate::event::schema::{FieldDef, FieldType, Schema};
use crate::event::time::Timestamp;
use crate::event::value::{OwnedValue, Text};
use crate::event::Event;
use crate::receive::{absent_value, coerce, Received, RecordLimits, RejectReason};
use std::borrow::Cow;
use std::sync::Arc;

/// Why a JSON event could not be decoded; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a JSON object.
    #[error("invalid JSON: {0}")]
    Syntax(String),
    /// A required envelope field is missing or mistyped.
    #[error("field `{field}`: {problem}")]
    Envelope {
        /// The envelope field (`id`, `ts`, `kind`, ...).
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The kind is not registered in this binary and unknown kinds are not allowed.
    #[error("unknown event kind `{0}`")]
    UnknownKind(String),
    /// A field of the kind is unexpected or mistyped.
    #[error("{0}")]
    Field(String),
    /// A required field of the kind is absent or null.
    #[error("{0}")]
    Missing(String),
    /// The event exceeds a [`RecordLimits`] limit.
    #[error("{0}")]
    TooLarge(String),
    /// An unknown kind's name, or a field name, cannot name a kind or field.
    #[error("{0}")]
    BadName(String),
}

impl DecodeError {
    /// Why, as a receiver counts it.
    pub fn reason(&self) -> RejectReason {
        match self {
            DecodeError::Syntax(_) => RejectReason::Malformed,
            DecodeError::Envelope { field: "kind", .. } => RejectReason::NoKind,
            DecodeError::Envelope { field: "ts", .. } => RejectReason::BadTime,
            DecodeError::Envelope { field: "id", .. } => RejectReason::BadId,
            DecodeError::Envelope { .. } => RejectReason::WrongType,
            DecodeError::UnknownKind(_) => RejectReason::UnknownKind,
            DecodeError::Field(_) => RejectReason::WrongType,
            DecodeError::Missing(_) => RejectReason::MissingField,
            DecodeError::TooLarge(_) => RejectReason::TooLarge,
            DecodeError::BadName(_) => RejectReason::BadName,
        }
    }
}

impl From<RecordError> for DecodeError {
    fn from(e: RecordError) -> Self {
        DecodeError::Field(e.to_string())
    }
}

/// Decodes one event encoded by [`write_event`](super::write_event). The kind must be registered in this
/// binary (built-in or declared with `usage_event!`); see [`Decoder`] for more options.
pub fn decode_event(bytes: &[u8]) -> Result<Event, DecodeError> {
    Decoder::default().decode(bytes)
}

/// Decodes JSON events back into [`Event`]s, checking each field against the kind's schema.
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    allow_unknown_kinds: bool,
    require_id: bool,
    fill_absent: bool,
    limits: RecordLimits,
}

impl Decoder {
    /// Accept kinds not registered in this binary, inferring a schema from the JSON
    /// types (integers as i64, or u64 above i64::MAX; objects as string maps; nulls as nullable strings).
    pub fn allow_unknown_kinds(mut self, yes: bool) -> Self {
        self.allow_unknown_kinds = yes;
        self
    }

    /// Reject events without an `id` instead of assigning a fresh UUIDv7.
    pub fn require_id(mut self, yes: bool) -> Self {
        self.require_id = yes;
        self
    }

    /// Fill fields a producer left out by the receive rule
    /// ([`receive::absent_value`](crate::receive::absent_value)) instead of rejecting
    /// the event; required fields are still required.
    pub fn fill_absent(mut self, yes: bool) -> Self {
        self.fill_absent = yes;
        self
    }

    /// Refuse events over these limits ([`DecodeError::TooLarge`]); the decoded
    /// size is checked before the event is parsed. Default: none.
    pub fn limits(mut self, limits: RecordLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Decodes one JSON object.
    pub fn decode(&self, bytes: &[u8]) -> Result<Event, DecodeError> {
        self.decode_value(self.parse(bytes)?)
    }

    /// Parses within the decode budget.
    fn parse(&self, bytes: &[u8]) -> Result<serde_json::Value, DecodeError> {
        let budget = self.limits.max_decode_bytes;
        if !within_decode_budget(bytes, budget) {
            return Err(DecodeError::TooLarge(format!(
                "the event would take more than {budget} bytes decoded (gateway.max_decode_bytes)"
            )));
        }
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Syntax(e.to_string()))
    }

    /// Decodes one JSON object; an event without an `id` gets one derived from these
    /// exact bytes and `seed` ([`EventId::from_content`]), so a re-sent event gets
    /// the same id (whatever [`Decoder::require_id`] says).
    ///
    /// ```
    /// use usage_core::json::Decoder;
    /// let line = br#"{"ts":"2026-01-01T00:00:00Z","kind":"relay_usage","project":"p","chain":"c","cu":1}"#;
    /// let d = Decoder::default().fill_absent(true);
    /// let (a, b) = (d.decode_or_derive(line, 7).unwrap(), d.decode_or_derive(line, 7).unwrap());
    /// assert_eq!(a.id(), b.id());
    /// assert_ne!(a.id(), d.decode_or_derive(line, 8).unwrap().id());
    /// ```
    pub fn decode_or_derive(&self, bytes: &[u8], seed: u64) -> Result<Event, DecodeError> {
        let v = self.parse(bytes)?;
        let derive = Decoder {
            require_id: false,
            ..self.clone()
        };
        let has_id = v.get("id").is_some();
        let event = derive.decode_value(v)?;
        Ok(if has_id {
            event
        } else {
            let id = EventId::from_content(Some(event.ts()), seed, bytes);
            event.with_id(id)
        })
    }

    /// Decodes one already-parsed JSON object.
    pub fn decode_value(&self, v: serde_json::Value) -> Result<Event, DecodeError> {
        let serde_json::Value::Object(mut obj) = v else {
            return Err(DecodeError::Syntax("expected a JSON object".into()));
        };
        let kind = match obj.remove("kind") {
            Some(serde_json::Value::String(k)) => k,
            Some(_) => return envelope("kind", "must be a string"),
            None => return envelope("kind", "is missing"),
        };
        let ts = match obj.remove("ts") {
            Some(serde_json::Value::String(s)) => Timestamp::parse_rfc3339(&s).map_err(|e| DecodeError::Envelope {
                field: "ts",
                problem: e.to_string(),
            })?,
            Some(_) => return envelope("ts", "must be an RFC 3339 string"),
            None => return envelope("ts", "is missing"),
        };
        let id = match obj.remove("id") {
            Some(serde_json::Value::String(s)) => Some(s.parse::<EventId>().map_err(|e| DecodeError::Envelope {
                field: "id",
                problem: format!("not a UUID: {e}"),
            })?),
            Some(_) => return envelope("id", "must be a UUID string"),
            None if self.require_id => return envelope("id", "is missing"),
            None => None,
        };
        let resource = decode_resource(&mut obj)?;
        // The envelope is taken: what is left are the event's own fields.
        self.check_limits(&obj)?;
        let schema: Arc<Schema> = match kind_schema(&kind) {
            Some(s) => Arc::new(s.clone()),
            None if self.allow_unknown_kinds => Arc::new(infer_schema(&kind, &obj)?),
            None => return Err(DecodeError::UnknownKind(kind)),
        };
        let mut values = Vec::with_capacity(schema.fields.len());
        for def in schema.fields.iter() {
            let v = match obj.remove(def.name.as_ref()) {
                Some(v) => v,
                None if self.fill_absent => match absent_value(&schema.kind, def) {
                    Some(filled) => {
                        values.push(filled);
                        continue;
                    }
                    None => serde_json::Value::Null,
                },
                None => serde_json::Value::Null,
            };
            values.push(json_to_value(&schema.kind, def, v)?);
        }
        if let Some(extra) = obj.keys().next() {
            return Err(DecodeError::Field(format!("kind `{kind}` has no field `{extra}`")));
        }
        let mut event = Event::from_record_at(ts, Record::new(schema, values)?);
        event = match id {
            Some(id) => event.with_id(id),
            None => event.with_id(EventId::new_v7(ts)),
        };
        if let Some(r) = resource {
            event = event.with_resource(Arc::new(r));
        }
        Ok(event)
    }
}

impl Decoder {
    /// Fields, keys and strings within the limits (nested string maps included).
    fn check_limits(&self, obj: &serde_json::Map<String, serde_json::Value>) -> Result<(), DecodeError> {
        let l = &self.limits;
        l.check_attributes(obj.len()).map_err(DecodeError::TooLarge)?;
        for (k, v) in obj {
            l.check_string("a key", k).map_err(DecodeError::TooLarge)?;
            match v {
                serde_json::Value::String(s) => l.check_string(format_args!("field `{k}`"), s),
                serde_json::Value::Object(m) => l.check_attributes(m.len()).and_then(|()| {
                    m.iter().try_for_each(|(mk, mv)| {
                        l.check_string(format_args!("a key of field `{k}`"), mk)?;
                        match mv {
                            serde_json::Value::String(s) => l.check_string(format_args!("field `{k}`.`{mk}`"), s),
                            _ => Ok(()),
                        }
                    })
                }),
                _ => Ok(()),
            }
            .map_err(DecodeError::TooLarge)?;
        }
        Ok(())
    }
}

fn envelope<T>(field: &'static str, problem: &str) -> Result<T, DecodeError> {
    Err(DecodeError::Envelope {
        field,
        problem: problem.to_string(),
    })
}

fn decode_resource(obj: &mut serde_json::Map<String, serde_json::Value>) -> Result<Option<Resource>, DecodeError> {
    let mut take = |field: &'static str| match obj.remove(field) {
        Some(serde_json::Value::String(s)) => Ok(Some(Text::from(s))),
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(_) => envelope(field, "must be a string"),
    };
    let name = take("service_name")?;
    let instance = take("service_instance_id")?;
    Ok(match (name, instance) {
        (None, None) => None,
        (name, instance) => Some(Resource {
            service_name: name.unwrap_or_else(|| Text::new_static("unknown_service")),
            service_instance_id: instance.unwrap_or_default(),
        }),
    })
}

fn json_to_value(kind: &str, def: &FieldDef, v: serde_json::Value) -> Result<OwnedValue, DecodeError> {
    use serde_json::Value as J;
    let bad = |got: &str| {
        Err(DecodeError::Field(format!(
            "field `{}` of kind `{kind}` must be {}{}, got {got}",
            def.name,
            def.ty,
            if def.nullable { " or null" } else { "" }
        )))
    };
    Ok(match (def.ty, v) {
        (_, J::Null) if def.nullable => OwnedValue::Null,
        (_, J::Null) => {
            return Err(DecodeError::Missing(format!(
                "field `{}` of kind `{kind}` ({}) is missing",
                def.name, def.ty
            )))
        }
        (FieldType::Str, J::String(s)) => OwnedValue::Str(s.into()),
        (ty, J::Number(n)) if ty != FieldType::StrMap => {
            let received = match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Received::Int(i),
                (None, Some(u)) => Received::UInt(u),
                _ => Received::Double(n.as_f64().unwrap_or(f64::NAN)),
            };
            match coerce(ty, received) {
                Some(v) => v,
                None => return bad(&format!("{n}")),
            }
        }
        (ty @ (FieldType::I64 | FieldType::U64), J::String(s)) => match coerce(ty, Received::Str(&s)) {
            Some(v) => v,
            None => return bad("a string"),
        },
        (ty, J::Bool(b)) => match coerce(ty, Received::Bool(b)) {
            Some(v) => v,
            None => return bad("a bool"),
        },
        (FieldType::StrMap, J::Object(m)) => {
            let mut out = Vec::with_capacity(m.len());
            for (k, v) in m {
                match v {
                    J::String(s) => out.push((Text::from(k), Text::from(s))),
                    _ => return bad(&format!("a non-string value under `{k}`")),
                }
            }
            OwnedValue::StrMap(out)
        }
        (_, other) => return bad(json_type(&other)),
    })
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a bool",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn infer_schema(kind: &str, obj: &serde_json::Map<String, serde_json::Value>) -> Result<Schema, DecodeError> {
    let mut fields = Vec::with_capacity(obj.len());
    for (name, v) in obj {
        // Every inferred field is nullable: the next event of the kind may leave it
        // out, and a destination's table must not conflict over it.
        let (ty, nullable) = match v {
            serde_json::Value::Null => (FieldType::Str, true),
            serde_json::Value::Bool(_) => (FieldType::Bool, true),
            serde_json::Value::Number(n) if n.is_i64() => (FieldType::I64, true),
            serde_json::Value::Number(n) if n.is_u64() => (FieldType::U64, true),
            serde_json::Value::Number(_) => (FieldType::F64, true),
            serde_json::Value::String(_) => (FieldType::Str, true),
            serde_json::Value::Object(_) => (FieldType::StrMap, true),
            serde_json::Value::Array(_) => {
                return Err(DecodeError::Field(format!(
                    "field `{name}`: arrays are not a field type"
                )))
            }
        };
        fields.push(FieldDef {
            name: Cow::Owned(name.clone()),
            ty,
            nullable,
        });
    }
    let schema = Schema {
        kind: Cow::Owned(kind.to_string()),
        fields: Cow::Owned(fields),
    };
    schema.validate().map_err(DecodeError::BadName)?;
    Ok(schema)
}
