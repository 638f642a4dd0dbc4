//! The OTLP/JSON path: a body held to its decode budget before prost parses it,
//! then the same views over the decoded messages as the protobuf path reads in place.

use super::values::{ARRAY, BYTES, MAP, UNSUPPORTED};
use super::view::{event_nanos, Any, Attr, RecordView, RequestView, ResourceView, Source};
use super::ReceiveError;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Av;
use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use usage_core::receive::{RecordLimits, RejectReason};

/// Bytes a decoded OTLP message may take at most: the largest message an OTLP/JSON
/// value can become, twice over for the vector holding it.
fn decoded_message_bytes() -> usize {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    let largest = [
        std::mem::size_of::<LogRecord>(),
        std::mem::size_of::<ScopeLogs>(),
        std::mem::size_of::<ResourceLogs>(),
        std::mem::size_of::<KeyValue>(),
        std::mem::size_of::<AnyValue>(),
    ]
    .into_iter()
    .max()
    .unwrap_or(256);
    2 * largest
}

/// Whether an OTLP/JSON body decodes within `budget`: every JSON object or array
/// counted as the largest message (scalars and string headers live inside their
/// message; string bytes are at most the body's). A short body is not scanned.
pub(super) fn within_json_budget(body: &[u8], budget: usize) -> bool {
    let per_value = decoded_message_bytes();
    if body.len().saturating_mul(per_value + 1) <= budget {
        return true;
    }
    usage_core::json::container_count(body)
        .saturating_mul(per_value)
        .saturating_add(body.len())
        <= budget
}

impl<'a> RequestView<'a> {
    /// The same view over a request decoded by prost (the OTLP/JSON path).
    pub(crate) fn from_decoded(
        req: &'a ExportLogsServiceRequest,
        max_records: usize,
        limits: RecordLimits,
    ) -> Result<Self, ReceiveError> {
        let mut view = RequestView::new(max_records, limits);
        for (ri, rl) in req.resource_logs.iter().enumerate() {
            let attrs = rl.resource.as_ref().map(|r| &r.attributes[..]).unwrap_or(&[]);
            let mut r = ResourceView::default();
            for kv in attrs {
                r.note(Attr {
                    key: &kv.key,
                    value: kv.value.as_ref().and_then(decoded_any),
                });
            }
            let resource = view.add_resource(r)?;
            for (si, sl) in rl.scope_logs.iter().enumerate() {
                for (li, lr) in sl.log_records.iter().enumerate() {
                    view.check_room()?;
                    view.decoded_record(rl, sl, lr, [ri, si, li], resource);
                }
            }
        }
        Ok(view)
    }

    /// One decoded record, refused alone when over a limit.
    fn decoded_record(
        &mut self,
        rl: &'a ResourceLogs,
        sl: &'a ScopeLogs,
        lr: &'a LogRecord,
        path: [usize; 3],
        resource: usize,
    ) {
        let start = self.attrs.len();
        let body = lr.body.as_ref().and_then(decoded_any);
        let mut over = match body {
            Some(Any::Str(s)) => self.limits.check_string("the body", s).err(),
            _ => None,
        };
        for kv in &lr.attributes {
            if over.is_some() {
                break;
            }
            let a = Attr {
                key: &kv.key,
                value: kv.value.as_ref().and_then(decoded_any),
            };
            over = self.add_attr(start, a).err();
        }
        if over.is_some() {
            self.attrs.truncate(start);
        }
        self.records.push(RecordView {
            path,
            resource,
            nanos: event_nanos(lr.time_unix_nano, lr.observed_time_unix_nano),
            body,
            event_name: &lr.event_name,
            attrs: start..self.attrs.len(),
            source: Source::Decoded {
                resource_logs: rl,
                scope_logs: sl,
                record: lr,
            },
            malformed: over.map(|m| (RejectReason::TooLarge, m)),
        });
    }
}

fn decoded_any(v: &AnyValue) -> Option<Any<'_>> {
    Some(match v.value.as_ref()? {
        Av::StringValue(s) => Any::Str(s),
        Av::BoolValue(b) => Any::Bool(*b),
        Av::IntValue(i) => Any::Int(*i),
        Av::DoubleValue(d) => Any::Double(*d),
        Av::ArrayValue(_) => Any::Other(ARRAY),
        Av::KvlistValue(_) => Any::Other(MAP),
        Av::BytesValue(_) => Any::Other(BYTES),
        Av::StringValueStrindex(_) => Any::Other(UNSUPPORTED),
    })
}
