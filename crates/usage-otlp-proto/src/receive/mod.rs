//! The receiving side: OTLP log records back into events (kind from the body,
//! fields from the typed attributes, id from `event.id`, time from the record,
//! resource from `service.name` / `service.instance.id`). The gateway's
//! `POST /v1/logs` uses it; so does the e2e suite reading rotel's log.

mod buffers;
mod decoded;
mod plain_attr;
mod raw;
mod schemas;
mod slots;
mod values;
mod view;
mod wire;

use crate::ID_ATTRIBUTE;
use buffers::{wrong_type, KindBuffers, Written};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;
use schemas::Schemas;
use slots::Slots;
use std::borrow::Cow;
use std::sync::Arc;
use usage_core::receive::{RecordLimits, RejectReason};
use usage_core::{Event, EventId, Record, Resource, Text, Timestamp};
use view::{Any, RequestView, Source};

/// Limits and leniency for [`events_from_request`].
#[derive(Debug, Clone, Copy)]
pub struct ReceiveOptions {
    /// At most this many log records (and `resourceLogs` entries) per request.
    pub max_events: usize,
    /// Accept kinds this binary has no schema for, inferring one from the attributes.
    pub allow_unknown_kinds: bool,
    /// What one record may cost; an OTLP/JSON body as a whole is held to
    /// `max_decode_bytes` before it is parsed.
    pub limits: RecordLimits,
}

impl Default for ReceiveOptions {
    fn default() -> Self {
        ReceiveOptions {
            max_events: usize::MAX,
            allow_unknown_kinds: false,
            limits: RecordLimits::default(),
        }
    }
}

/// Why a request cannot become events.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiveError {
    /// The body or a record is malformed; the message names the record and attribute.
    Invalid(String),
    /// More records than [`ReceiveOptions::max_events`].
    TooMany(usize),
    /// The body as a whole is over a limit (what it would take decoded, or its
    /// resource entries); the message names the limit.
    TooLarge(String),
}

impl std::fmt::Display for ReceiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReceiveError::Invalid(m) => f.write_str(m),
            ReceiveError::TooMany(n) => write!(f, "more than {n} log records in one request"),
            ReceiveError::TooLarge(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ReceiveError {}

/// Parses an OTLP/HTTP logs body: protobuf, or JSON when `json`.
pub fn decode_request(body: &[u8], json: bool) -> Result<ExportLogsServiceRequest, ReceiveError> {
    if json {
        serde_json::from_slice(body).map_err(|e| ReceiveError::Invalid(format!("body: invalid OTLP/JSON: {e}")))
    } else {
        ExportLogsServiceRequest::decode(body)
            .map_err(|e| ReceiveError::Invalid(format!("body: invalid OTLP protobuf: {e}")))
    }
}

/// What a request became: the events, and each record refused with why. One bad
/// record never costs its neighbours.
#[derive(Debug, Default)]
pub struct Received {
    /// The records that became events, in request order.
    pub events: Vec<Event>,
    /// The records refused, in request order.
    pub rejected: Vec<RejectedRecord>,
}

impl Received {
    /// All or nothing: the events, or the first rejection as an error (for readers of
    /// our own exporter's output, where any rejection is a bug).
    pub fn all(self) -> Result<Vec<Event>, ReceiveError> {
        match self.rejected.into_iter().next() {
            Some(r) => Err(ReceiveError::Invalid(r.message)),
            None => Ok(self.events),
        }
    }
}

/// One refused log record.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRecord {
    /// Its position among the request's records (0-based, request order).
    pub index: usize,
    /// Why, as counted.
    pub reason: RejectReason,
    /// Why, naming the record (`resourceLogs[r].scopeLogs[s].logRecords[l]`) and the attribute.
    pub message: String,
    /// The record alone as a one-record request in the request's encoding (protobuf,
    /// or OTLP/JSON), with its resource and scope: posting it to `/v1/logs` again
    /// replays it, and gives it the id it would have had.
    pub raw: Vec<u8>,
}

/// Every log record of an OTLP/HTTP logs body (protobuf, or JSON when `json`) as an
/// event, or as a rejected record. `Err` only when the body as a whole cannot be read.
///
/// Protobuf is read in place: strings are copied once, into the buffer of encoded
/// fields each kind's events share.
///
/// ```
/// use usage_otlp_proto::receive::{events_from_body, ReceiveOptions};
/// assert!(events_from_body(b"", false, &ReceiveOptions::default()).unwrap().events.is_empty());
/// let err = events_from_body(&[0x0a, 0x05], false, &ReceiveOptions::default()).unwrap_err();
/// assert!(err.to_string().contains("invalid OTLP protobuf"));
/// ```
pub fn events_from_body(body: &[u8], json: bool, opts: &ReceiveOptions) -> Result<Received, ReceiveError> {
    if json {
        let budget = opts.limits.max_decode_bytes;
        if !decoded::within_json_budget(body, budget) {
            return Err(ReceiveError::TooLarge(format!(
                "body: the OTLP/JSON request would take more than {budget} bytes decoded (gateway.max_decode_bytes)"
            )));
        }
        let req = decode_request(body, true)?;
        return events_from_view(&RequestView::from_decoded(&req, opts.max_events, opts.limits)?, opts);
    }
    events_from_view(&RequestView::from_protobuf(body, opts.max_events, opts.limits)?, opts)
}

/// The most working memory one request's read can take with these options: the
/// views of its records and attributes (both encodings), plus `max_decode_bytes`
/// for an OTLP/JSON body's decoded messages. Strings are borrowed from the body or
/// copied once into the events' field buffers, so they add at most the body's size
/// (and a few bytes of framing per field, within what the gateway counts per event).
pub fn working_memory_bound(opts: &ReceiveOptions) -> usize {
    let record = std::mem::size_of::<view::RecordView<'static>>()
        + std::mem::size_of::<view::ResourceView<'static>>()
        + opts
            .limits
            .max_attributes
            .saturating_mul(std::mem::size_of::<view::Attr<'static>>());
    // Vectors grow by doubling: up to twice what they hold.
    opts.max_events
        .saturating_mul(record)
        .saturating_mul(2)
        .saturating_add(opts.limits.max_decode_bytes)
}

/// Every log record of a decoded request as an event, or as a rejected record.
///
/// ```
/// use usage_otlp_proto::receive::{events_from_request, ReceiveOptions};
/// let req = Default::default();
/// assert!(events_from_request(&req, &ReceiveOptions::default()).unwrap().events.is_empty());
/// ```
pub fn events_from_request(req: &ExportLogsServiceRequest, opts: &ReceiveOptions) -> Result<Received, ReceiveError> {
    events_from_view(&RequestView::from_decoded(req, opts.max_events, opts.limits)?, opts)
}

/// The refused records are kept whole, each with its resource and scope: together
/// they may take at most `max_decode_bytes`, or one large resource repeated over
/// thousands of refused records would take thousands of times the body.
fn events_from_view(view: &RequestView<'_>, opts: &ReceiveOptions) -> Result<Received, ReceiveError> {
    let mut kept = 0usize;
    let mut out = Received {
        events: Vec::with_capacity(view.records.len()),
        rejected: Vec::new(),
    };
    let mut schemas = Schemas::default();
    let mut slots = Slots::default();
    let mut seeds = SeedCache::default();
    let resources: Vec<Arc<Resource>> = view
        .resources
        .iter()
        .map(|r| {
            Arc::new(Resource {
                service_name: Text::new(r.service_name.unwrap_or("unknown_service")),
                service_instance_id: Text::new(r.instance_id.unwrap_or_default()),
            })
        })
        .collect();
    // Every record's fields go into its kind's buffer, which the kind's events then share.
    let mut buffers = KindBuffers::new(view.records.len());
    let mut read = Vec::with_capacity(view.records.len());
    for (index, lr) in view.records.iter().enumerate() {
        match read_record(view, lr, opts, &mut schemas, &mut slots, &mut buffers) {
            Ok(r) => {
                let id = r.id.unwrap_or_else(|| {
                    let (seed, content) = seeds.seed_and_content(view, lr);
                    EventId::from_content(Some(r.ts), seed, &content)
                });
                read.push((index, id, r));
            }
            Err((reason, m)) => reject(view, index, reason, m, opts, &mut kept, &mut out)?,
        }
    }
    let shared = buffers.share();
    for (index, id, r) in read {
        let lr = &view.records[index];
        let resource = resources[lr.resource].clone();
        match r.fields {
            Fields::Written(written) => {
                if !shared.push_event(written, (id, r.ts), resource, &mut out.events) {
                    let m = "its fields were lost in the request's field buffer".to_string();
                    reject(view, index, RejectReason::WrongType, m, opts, &mut kept, &mut out)?;
                }
            }
            Fields::Record(record) => out
                .events
                .push(Event::from_record_at(r.ts, record).with_id(id).with_resource(resource)),
        }
    }
    Ok(out)
}

/// Keeps a refused record whole (with its resource and scope) and why.
fn reject(
    view: &RequestView<'_>,
    index: usize,
    reason: RejectReason,
    m: String,
    opts: &ReceiveOptions,
    kept: &mut usize,
    out: &mut Received,
) -> Result<(), ReceiveError> {
    let lr = &view.records[index];
    let [ri, si, li] = lr.path;
    let budget = opts.limits.max_decode_bytes;
    let Some(raw) = raw::one_record_request(view, lr, budget.saturating_sub(*kept)) else {
        return Err(ReceiveError::TooLarge(format!(
            "body: its refused records, kept with their resource and scope, would take more than {budget} bytes (gateway.max_decode_bytes)"
        )));
    };
    *kept += raw.len();
    out.rejected.push(RejectedRecord {
        index,
        reason,
        message: format!("resourceLogs[{ri}].scopeLogs[{si}].logRecords[{li}]: {m}"),
        raw,
    });
    Ok(())
}

/// A record read, before its event is built.
struct ReadRecord {
    ts: Timestamp,
    /// From `event.id`; derived from the record's bytes when it has none.
    id: Option<EventId>,
    fields: Fields,
}

/// Where a read record's fields are.
enum Fields {
    /// In the request's buffer for its kind.
    Written(Written),
    /// Kinds with string maps, which field buffers do not hold.
    Record(Record),
}

/// The record's kind: its body when that names a registered kind; else its
/// `event_name` (OpenTelemetry's events convention, which leaves the body free);
/// else its body text (a kind this binary does not know, when those are allowed).
fn record_kind<'a>(lr: &view::RecordView<'a>, schemas: &Schemas) -> Result<&'a str, (RejectReason, String)> {
    let body = match lr.body {
        Some(Any::Str(k)) => Some(k),
        _ => None,
    };
    match body {
        Some(k) if schemas.is_registered(k) => Ok(k),
        _ if !lr.event_name.is_empty() => Ok(lr.event_name),
        Some(k) => Ok(k),
        None => Err((
            RejectReason::NoKind,
            "the body must be the event kind as a string, or event_name must name it".into(),
        )),
    }
}

/// One record's time, id and fields, or why not.
fn read_record<'a>(
    view: &RequestView<'a>,
    lr: &view::RecordView<'a>,
    opts: &ReceiveOptions,
    schemas: &mut Schemas,
    slots: &mut Slots<'a>,
    buffers: &mut KindBuffers,
) -> Result<ReadRecord, (RejectReason, String)> {
    slots.id = None;
    if let Some((reason, m)) = &lr.malformed {
        return Err((*reason, m.clone()));
    }
    let kind = record_kind(lr, schemas)?;
    if lr.nanos == 0 {
        // Not 1970 (an unbilled partition), and not the receive time either (a
        // re-send would get another time, and time-keyed dedup would miss it).
        return Err((
            RejectReason::BadTime,
            "the record has neither time_unix_nano nor observed_time_unix_nano".into(),
        ));
    }
    let ts = Timestamp::from_micros((lr.nanos / 1000) as i64);
    let attrs = view.attrs(lr);
    let schema = schemas.for_record(kind, attrs, opts.allow_unknown_kinds)?;
    slots.fill(schema, attrs);
    let id = match slots.id {
        Some(Any::Str(id)) => Some(
            id.parse()
                .map_err(|_| (RejectReason::BadId, format!("attribute `{ID_ATTRIBUTE}`: not a UUID")))?,
        ),
        Some(_) => {
            return Err((
                RejectReason::BadId,
                format!("attribute `{ID_ATTRIBUTE}` must be a string"),
            ))
        }
        None => None,
    };
    let fields = if schema.map_fields.is_empty() {
        Fields::Written(buffers.write(slots, &schema.schema)?)
    } else {
        let mut values = Vec::with_capacity(schema.schema.fields.len());
        slots.each_value(&schema.schema, |v| {
            values.push(v.to_owned_value());
            Ok(())
        })?;
        Fields::Record(Record::new(schema.schema.clone(), values).map_err(wrong_type)?)
    };
    Ok(ReadRecord { ts, id, fields })
}

/// Content-derived ids: the resource and scope bytes seed the hash of the record's
/// bytes (see `docs/otlp.md`); the seed is computed once per scope, not per record.
#[derive(Default)]
struct SeedCache {
    last: Option<(usize, usize, usize, u64)>,
}

impl SeedCache {
    fn seed_and_content<'a>(&mut self, view: &RequestView<'a>, lr: &view::RecordView<'a>) -> (u64, Cow<'a, [u8]>) {
        match lr.source {
            Source::Wire { scope, record } => {
                let key = (lr.resource, scope.as_ptr() as usize, scope.len());
                let seed = self.seed(key, || EventId::content_seed(&[view.resources[lr.resource].raw, scope]));
                (seed, Cow::Borrowed(record))
            }
            // OTLP/JSON: the same derivation over the protobuf encoding of the decoded messages.
            Source::Decoded {
                resource_logs,
                scope_logs,
                record,
            } => {
                let key = (lr.resource, scope_logs as *const _ as usize, 0);
                let seed = self.seed(key, || {
                    let resource = resource_logs.resource.as_ref().map(Message::encode_to_vec);
                    let scope = scope_logs.scope.as_ref().map(Message::encode_to_vec);
                    let (resource, scope) = (resource.unwrap_or_default(), scope.unwrap_or_default());
                    EventId::content_seed(&[&resource, &scope])
                });
                (seed, Cow::Owned(record.encode_to_vec()))
            }
        }
    }

    /// The seed of the scope `key` names: computed when the scope changes, not per record.
    fn seed(&mut self, key: (usize, usize, usize), compute: impl FnOnce() -> u64) -> u64 {
        match self.last {
            Some((r, p, l, seed)) if (r, p, l) == key => seed,
            _ => {
                let seed = compute();
                self.last = Some((key.0, key.1, key.2, seed));
                seed
            }
        }
    }
}

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod names_tests;
#[cfg(test)]
mod producer_tests;
#[cfg(test)]
mod tests;
