//! Events as OTLP log records: body = kind, typed flat attributes, event id.

use opentelemetry::logs::{AnyValue, LogRecord};
use opentelemetry::Key;
use usage_core::{Event, Value};

pub use usage_otlp_proto::ID_ATTRIBUTE;

/// The event's fields as flat typed attributes (nulls omitted; a string map
/// becomes `<field>.<key>` attributes), plus `event.id`.
pub fn attributes_of(e: &Event) -> Vec<(Key, AnyValue)> {
    let mut out = Vec::with_capacity(e.schema().fields.len() + 1);
    out.push((Key::from_static_str(ID_ATTRIBUTE), AnyValue::from(e.id().to_string())));
    let schema = e.schema();
    let mut fields = schema.fields.iter();
    e.visit(|v| {
        let Some(def) = fields.next() else { return };
        let name = def.name.to_string();
        match v {
            Value::Null => {}
            Value::Str(s) => out.push((Key::from(name), AnyValue::from(s.to_string()))),
            Value::I64(i) => out.push((Key::from(name), AnyValue::from(i))),
            // OTLP has no unsigned integers: values above i64::MAX travel as decimal
            // strings, which keeps them exact (a double would not).
            Value::U64(u) => out.push((
                Key::from(name),
                i64::try_from(u).map_or_else(|_| AnyValue::from(u.to_string()), AnyValue::from),
            )),
            Value::F64(f) => out.push((Key::from(name), AnyValue::from(f))),
            Value::Bool(b) => out.push((Key::from(name), AnyValue::from(b))),
            Value::StrMap(m) => {
                for (k, v) in m {
                    out.push((Key::from(format!("{name}.{k}")), AnyValue::from(v.to_string())));
                }
            }
        }
    });
    out
}

/// Fills an SDK log record from an event.
pub(crate) fn fill<R: LogRecord>(r: &mut R, e: &Event) {
    let ts = std::time::UNIX_EPOCH + std::time::Duration::from_micros(e.ts().as_micros().max(0) as u64);
    r.set_timestamp(ts);
    r.set_observed_timestamp(ts);
    r.set_body(AnyValue::from(e.kind().to_string()));
    r.add_attributes(attributes_of(e));
}
