//! A request as borrowed views: resources, log records and their attributes,
//! read either straight from protobuf bytes or from a decoded (JSON) request.

use super::values::{any_value, key_value, read_key_value};
use super::wire::{self, Fields, WireError};
use super::ReceiveError;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use std::ops::Range;
use usage_core::receive::{RecordLimits, RejectReason};

/// An attribute or body value; the kinds events cannot hold are only named.
// An 8-byte tag keeps the payload aligned: copies stay whole words (byte-offset
// copies stalled store forwarding and cost a third of the read).
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(u64)]
pub(crate) enum Any<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    /// Arrays, maps, bytes and string-table references: named for errors.
    Other(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Attr<'a> {
    pub key: &'a str,
    /// `None` when the attribute carries no value.
    pub value: Option<Any<'a>>,
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ResourceView<'a> {
    /// The `Resource` message's bytes (empty when absent or decoded from JSON).
    pub raw: &'a [u8],
    pub service_name: Option<&'a str>,
    pub instance_id: Option<&'a str>,
    /// Whether each key was met yet: its first occurrence decides, whatever its type,
    /// as a lookup in the decoded attribute list does.
    seen: [bool; 2],
}

impl<'a> ResourceView<'a> {
    pub(super) fn note(&mut self, attr: Attr<'a>) {
        let (slot, seen) = match attr.key {
            "service.name" => (&mut self.service_name, &mut self.seen[0]),
            "service.instance.id" => (&mut self.instance_id, &mut self.seen[1]),
            _ => return,
        };
        if !*seen {
            *seen = true;
            *slot = match attr.value {
                Some(Any::Str(s)) => Some(s),
                _ => None,
            };
        }
    }
}

/// Event time, or the observed time when the producer left it unset.
pub(super) fn event_nanos(time: u64, observed: u64) -> u64 {
    if time > 0 {
        time
    } else {
        observed
    }
}

#[derive(Debug)]
pub(crate) struct RecordView<'a> {
    /// (resourceLogs, scopeLogs, logRecords) indices, for error messages.
    pub path: [usize; 3],
    pub resource: usize,
    /// Event time, falling back to observed time.
    pub nanos: u64,
    pub body: Option<Any<'a>>,
    /// `LogRecord.event_name` (field 12), empty when unset.
    pub event_name: &'a str,
    pub attrs: Range<usize>,
    /// Where the record came from: its own bytes, or the decoded messages.
    pub source: Source<'a>,
    /// Why the record cannot be taken as read: its bytes are malformed or it is over
    /// a limit (its neighbours are still taken).
    pub malformed: Option<(RejectReason, String)>,
}

/// A record's origin, for content-derived ids and for keeping a rejected record.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// Read in place: the enclosing `InstrumentationScope` and the `LogRecord` bytes.
    Wire { scope: &'a [u8], record: &'a [u8] },
    /// Decoded from OTLP/JSON.
    Decoded {
        resource_logs: &'a ResourceLogs,
        scope_logs: &'a ScopeLogs,
        record: &'a LogRecord,
    },
}

/// Every log record of one request, in order.
#[derive(Debug, Default)]
pub(crate) struct RequestView<'a> {
    pub resources: Vec<ResourceView<'a>>,
    pub records: Vec<RecordView<'a>>,
    pub(super) attrs: Vec<Attr<'a>>,
    pub(super) max_records: usize,
    pub(super) limits: RecordLimits,
}

/// Why one record cannot be taken.
enum Problem {
    Wire(WireError),
    Limit(String),
}

impl From<WireError> for Problem {
    fn from(e: WireError) -> Self {
        Problem::Wire(e)
    }
}

impl<'a> RequestView<'a> {
    pub(crate) fn attrs(&self, r: &RecordView<'a>) -> &[Attr<'a>] {
        &self.attrs[r.attrs.clone()]
    }

    pub(super) fn check_room(&self) -> Result<(), ReceiveError> {
        if self.records.len() >= self.max_records {
            return Err(ReceiveError::TooMany(self.max_records));
        }
        Ok(())
    }

    /// One resource more, within as many as records are allowed (an empty
    /// `ResourceLogs` costs its view, not a record).
    pub(super) fn add_resource(&mut self, r: ResourceView<'a>) -> Result<usize, ReceiveError> {
        if self.resources.len() >= self.max_records {
            return Err(ReceiveError::TooLarge(format!(
                "more than {} resourceLogs entries in one request",
                self.max_records
            )));
        }
        self.resources.push(r);
        Ok(self.resources.len() - 1)
    }

    /// An attribute of the record whose attributes start at `start`, within the limits.
    pub(super) fn add_attr(&mut self, start: usize, a: Attr<'a>) -> Result<(), String> {
        self.limits.check_attributes(self.attrs.len() - start + 1)?;
        check_attr(&self.limits, &a)?;
        self.attrs.push(a);
        Ok(())
    }

    /// Reads a `KeyValue` straight into a new last attribute of the record that
    /// began at `start`. Built in place: an attribute built on the stack and then
    /// copied was re-read wider than it was written, a store-forwarding stall that
    /// was the hottest spot of the read. On an error the caller drops the record's
    /// attributes, this half-read one with them.
    fn read_attr(&mut self, start: usize, buf: &'a [u8], base: usize) -> Result<(), Problem> {
        self.limits
            .check_attributes(self.attrs.len() - start + 1)
            .map_err(Problem::Limit)?;
        let at = self.attrs.len();
        self.attrs.push(Attr { key: "", value: None });
        let attr = &mut self.attrs[at];
        read_key_value(attr, buf, base, 0)?;
        check_attr(&self.limits, attr).map_err(Problem::Limit)
    }

    /// An empty view that will hold at most `max_records` records within `limits`.
    pub(super) fn new(max_records: usize, limits: RecordLimits) -> Self {
        RequestView {
            max_records,
            limits,
            ..Default::default()
        }
    }

    /// Reads an `ExportLogsServiceRequest` from protobuf bytes without copying strings.
    pub(crate) fn from_protobuf(
        body: &'a [u8],
        max_records: usize,
        limits: RecordLimits,
    ) -> Result<Self, ReceiveError> {
        let mut view = RequestView::new(max_records, limits);
        // A record takes at least ~128 bytes on the wire and an attribute ~16: reserve once.
        view.records.reserve((body.len() / 128).min(max_records.min(1 << 16)));
        view.attrs.reserve(
            (body.len() / 16)
                .min(1 << 20)
                .min(max_records.saturating_mul(limits.max_attributes)),
        );
        let mut f = Fields::new(body, 0);
        let mut ri = 0;
        while let Some((n, w, at)) = f.next_field().map_err(invalid)? {
            if n == 1 {
                view.resource_logs(
                    wire::bytes(w, "ExportLogsServiceRequest.resource_logs", at).map_err(invalid)?,
                    at,
                    ri,
                )?;
                ri += 1;
            }
        }
        Ok(view)
    }

    fn resource_logs(&mut self, buf: &'a [u8], base: usize, ri: usize) -> Result<(), ReceiveError> {
        let resource = self.add_resource(ResourceView::default())?;
        let mut f = Fields::new(buf, base);
        let mut si = 0;
        while let Some((n, w, at)) = f.next_field().map_err(invalid)? {
            match n {
                1 => {
                    let b = wire::bytes(w, "ResourceLogs.resource", at).map_err(invalid)?;
                    self.resources[resource].raw = b;
                    self.resource(b, at, resource).map_err(invalid)?;
                }
                2 => {
                    let b = wire::bytes(w, "ResourceLogs.scope_logs", at).map_err(invalid)?;
                    self.scope_logs(b, at, [ri, si], resource)?;
                    si += 1;
                }
                3 => {
                    wire::string(w, "ResourceLogs.schema_url", at).map_err(invalid)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn resource(&mut self, buf: &'a [u8], base: usize, index: usize) -> Result<(), WireError> {
        let mut f = Fields::new(buf, base);
        while let Some((n, w, at)) = f.next_field()? {
            match n {
                1 => {
                    let a = key_value(wire::bytes(w, "Resource.attributes", at)?, at, 0)?;
                    self.resources[index].note(a);
                }
                2 => {
                    wire::varint(w, "Resource.dropped_attributes_count", at)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn scope_logs(
        &mut self,
        buf: &'a [u8],
        base: usize,
        [ri, si]: [usize; 2],
        resource: usize,
    ) -> Result<(), ReceiveError> {
        let mut f = Fields::new(buf, base);
        let mut li = 0;
        let first = self.records.len();
        let mut scope_bytes: &'a [u8] = &[];
        while let Some((n, w, at)) = f.next_field().map_err(invalid)? {
            match n {
                1 => {
                    scope_bytes = wire::bytes(w, "ScopeLogs.scope", at).map_err(invalid)?;
                    scope(scope_bytes, at).map_err(invalid)?;
                }
                2 => {
                    self.check_room()?;
                    let b = wire::bytes(w, "ScopeLogs.log_records", at).map_err(invalid)?;
                    self.log_record(b, at, [ri, si, li], resource, scope_bytes);
                    li += 1;
                }
                3 => {
                    wire::string(w, "ScopeLogs.schema_url", at).map_err(invalid)?;
                }
                _ => {}
            }
        }
        // The scope may follow its records on the wire: every record gets the final one.
        for r in &mut self.records[first..] {
            if let Source::Wire { scope, .. } = &mut r.source {
                *scope = scope_bytes;
            }
        }
        Ok(())
    }

    /// One record; malformed bytes make a record that says so, not a request error.
    fn log_record(&mut self, buf: &'a [u8], base: usize, path: [usize; 3], resource: usize, scope: &'a [u8]) {
        let start = self.attrs.len();
        let source = Source::Wire { scope, record: buf };
        let (nanos, body, event_name, malformed) = match self.log_record_fields(buf, base, start) {
            Ok((nanos, body, event_name)) => (nanos, body, event_name, None),
            Err(problem) => {
                self.attrs.truncate(start);
                let why = match problem {
                    Problem::Wire(e) => (RejectReason::Malformed, format!("invalid OTLP protobuf: {}", e.0)),
                    Problem::Limit(m) => (RejectReason::TooLarge, m),
                };
                (0, None, "", Some(why))
            }
        };
        self.records.push(RecordView {
            path,
            resource,
            nanos,
            body,
            event_name,
            attrs: start..self.attrs.len(),
            source,
            malformed,
        });
    }

    /// A record's time, body, event name and attributes (pushed to `attrs` from `start`).
    fn log_record_fields(
        &mut self,
        buf: &'a [u8],
        base: usize,
        start: usize,
    ) -> Result<(u64, Option<Any<'a>>, &'a str), Problem> {
        let (mut time, mut observed, mut body, mut event_name) = (0, 0, None, "");
        let mut f = Fields::new(buf, base);
        loop {
            // Most of a record is attributes of under 128 bytes: taken without the
            // general field read (what it would make of them is the same).
            if let Some((b, at)) = f.next_short_bytes(ATTRIBUTES_TAG) {
                self.read_attr(start, b, at)?;
                continue;
            }
            let Some((n, w, at)) = f.next_field()? else {
                break;
            };
            match n {
                1 => time = wire::fixed64(w, "LogRecord.time_unix_nano", at)?,
                11 => observed = wire::fixed64(w, "LogRecord.observed_time_unix_nano", at)?,
                2 => {
                    wire::varint(w, "LogRecord.severity_number", at)?;
                }
                3 => {
                    wire::string(w, "LogRecord.severity_text", at)?;
                }
                // A repeated singular message merges: an empty one keeps the earlier value.
                5 => body = any_value(wire::bytes(w, "LogRecord.body", at)?, at, 0)?.or(body),
                6 => {
                    let b = wire::bytes(w, "LogRecord.attributes", at)?;
                    self.read_attr(start, b, at)?;
                }
                7 => {
                    wire::varint(w, "LogRecord.dropped_attributes_count", at)?;
                }
                8 => {
                    wire::fixed32(w, "LogRecord.flags", at)?;
                }
                9 => {
                    wire::bytes(w, "LogRecord.trace_id", at)?;
                }
                10 => {
                    wire::bytes(w, "LogRecord.span_id", at)?;
                }
                12 => event_name = wire::string(w, "LogRecord.event_name", at)?,
                _ => {}
            }
        }
        if let Some(Any::Str(s)) = body {
            self.limits.check_string("the body", s).map_err(Problem::Limit)?;
        }
        Ok((event_nanos(time, observed), body, event_name))
    }
}

/// `LogRecord.attributes` (field 6, length-delimited) as its tag byte.
const ATTRIBUTES_TAG: u8 = 0x32;

/// An attribute's key and string value within the string limit.
fn check_attr(limits: &RecordLimits, a: &Attr<'_>) -> Result<(), String> {
    limits.check_string(format_args!("attribute key {:.32?}", a.key), a.key)?;
    if let Some(Any::Str(s)) = a.value {
        limits.check_string(format_args!("attribute `{:.64}`", a.key), s)?;
    }
    Ok(())
}

fn invalid(e: WireError) -> ReceiveError {
    ReceiveError::Invalid(format!("body: invalid OTLP protobuf: {}", e.0))
}

/// An `InstrumentationScope`, checked and ignored.
fn scope(buf: &[u8], base: usize) -> Result<(), WireError> {
    let mut f = Fields::new(buf, base);
    while let Some((n, w, at)) = f.next_field()? {
        match n {
            1 => {
                wire::string(w, "InstrumentationScope.name", at)?;
            }
            2 => {
                wire::string(w, "InstrumentationScope.version", at)?;
            }
            3 => {
                key_value(wire::bytes(w, "InstrumentationScope.attributes", at)?, at, 0)?;
            }
            4 => {
                wire::varint(w, "InstrumentationScope.dropped_attributes_count", at)?;
            }
            _ => {}
        }
    }
    Ok(())
}
