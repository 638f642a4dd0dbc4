//! A rejected record alone, as a one-record request in the encoding it came in, so
//! the gateway can keep it and an operator can post it to `/v1/logs` again.

use super::view::{RecordView, RequestView, Source};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};

/// `ExportLogsServiceRequest { resource_logs { resource, scope_logs { scope, log_records } } }`
/// around the record's own bytes (protobuf), or the same request as OTLP/JSON;
/// `None` when it would take more than `room` bytes (protobuf: known before it is built).
pub(crate) fn one_record_request(view: &RequestView<'_>, lr: &RecordView<'_>, room: usize) -> Option<Vec<u8>> {
    let out = match lr.source {
        Source::Wire { scope, record } => {
            let resource = view.resources[lr.resource].raw;
            // Three levels of tag and length take at most 3 x 11 bytes each.
            if resource.len() + scope.len() + record.len() + 66 > room {
                return None;
            }
            let mut scope_logs = Vec::with_capacity(scope.len() + record.len() + 16);
            if !scope.is_empty() {
                put_field(&mut scope_logs, 1, scope);
            }
            put_field(&mut scope_logs, 2, record);
            let mut resource_logs = Vec::with_capacity(resource.len() + scope_logs.len() + 16);
            if !resource.is_empty() {
                put_field(&mut resource_logs, 1, resource);
            }
            put_field(&mut resource_logs, 2, &scope_logs);
            let mut out = Vec::with_capacity(resource_logs.len() + 8);
            put_field(&mut out, 1, &resource_logs);
            out
        }
        Source::Decoded {
            resource_logs,
            scope_logs,
            record,
        } => {
            let req = ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    resource: resource_logs.resource.clone(),
                    scope_logs: vec![ScopeLogs {
                        scope: scope_logs.scope.clone(),
                        log_records: vec![record.clone()],
                        schema_url: scope_logs.schema_url.clone(),
                    }],
                    schema_url: resource_logs.schema_url.clone(),
                }],
            };
            serde_json::to_vec(&req).unwrap_or_default()
        }
    };
    (out.len() <= room).then_some(out)
}

/// A length-delimited field: tag, varint length, bytes.
fn put_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, u64::from(field << 3 | 2));
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
