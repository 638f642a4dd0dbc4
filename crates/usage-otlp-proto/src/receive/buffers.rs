//! A request's encoded fields, one buffer per kind.
//!
//! The events of a buffer share it until the last of them is dropped, and each
//! accounts only its own bytes. Exporters are routed by kind, so every exporter
//! that takes one of a buffer's events takes all of them: an exporter that is slow
//! for one kind never holds another kind's bytes it does not account for.

use super::Slots;
use std::sync::Arc;
use usage_core::receive::RejectReason;
use usage_core::{Event, EventId, FieldBuffer, Resource, Schema, SharedFields, Timestamp, WrittenFields};

/// Where one record's fields were written: its kind's buffer, and its place there.
#[derive(Debug, Clone, Copy)]
pub(super) struct Written {
    buffer: usize,
    fields: WrittenFields,
}

/// The buffers of one request, in the order their kinds first appear.
pub(super) struct KindBuffers {
    kinds: Vec<(Arc<Schema>, FieldBuffer)>,
    /// Room the first kind's buffer reserves: most requests carry one kind.
    first_capacity: usize,
}

/// Room reserved per record (a `relay_usage` with Lava's values takes about 200
/// bytes); `share` gives back what was not used.
const BYTES_PER_RECORD: usize = 256;

impl KindBuffers {
    /// Buffers for a request of `records` records.
    pub(super) fn new(records: usize) -> Self {
        KindBuffers {
            kinds: Vec::new(),
            first_capacity: records.saturating_mul(BYTES_PER_RECORD),
        }
    }

    /// Writes one record's fields (the values `slots` sorted for `schema`) into its
    /// kind's buffer; none are kept when one is refused.
    pub(super) fn write(&mut self, slots: &Slots<'_>, schema: &Arc<Schema>) -> Result<Written, (RejectReason, String)> {
        // A request's records of one kind share one schema: its address settles it
        // without comparing names (inferred schemas of one kind differ, their names do not).
        let index = match self
            .kinds
            .iter()
            .position(|(s, _)| Arc::ptr_eq(s, schema) || s.kind == schema.kind)
        {
            Some(i) => i,
            None => {
                let capacity = if self.kinds.is_empty() { self.first_capacity } else { 0 };
                self.kinds.push((schema.clone(), FieldBuffer::with_capacity(capacity)));
                self.kinds.len() - 1
            }
        };
        let buffer = &mut self.kinds[index].1;
        buffer.begin(schema);
        let written = slots
            .each_value(schema, |v| buffer.push(v).map_err(wrong_type))
            .and_then(|()| buffer.finish().map_err(wrong_type));
        if written.is_err() {
            buffer.abandon();
        }
        written.map(|fields| Written { buffer: index, fields })
    }

    /// Freezes the buffers for the request's events to share.
    pub(super) fn share(self) -> SharedBuffers {
        SharedBuffers(self.kinds.into_iter().map(|(_, b)| b.share()).collect())
    }
}

/// A request's buffers, written.
pub(super) struct SharedBuffers(Vec<SharedFields>);

impl SharedBuffers {
    /// Appends the event whose fields were `written`, with its id, time and
    /// resource, to `out`; false if no buffer holds it.
    #[inline]
    pub(super) fn push_event(
        &self,
        written: Written,
        envelope: (EventId, Timestamp),
        resource: Arc<Resource>,
        out: &mut Vec<Event>,
    ) -> bool {
        self.0
            .get(written.buffer)
            .is_some_and(|b| b.push_event(written.fields, envelope, Some(resource), out))
    }
}

pub(super) fn wrong_type(e: impl ToString) -> (RejectReason, String) {
    (RejectReason::WrongType, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::view::RequestView;
    use super::super::{read_record, record_kind, Fields, ReceiveOptions, Schemas, Slots};
    use super::KindBuffers;
    use crate::proto::request;
    use prost::Message;
    use usage_core::Resource;

    /// Kinds interleaved in one request: each kind's records share a buffer, and no
    /// buffer holds two kinds.
    #[test]
    fn each_kind_has_its_own_buffer() {
        let one = crate::proto::tests::one_of_each_kind();
        let events: Vec<_> = one.iter().chain(&one).chain(&one[..1]).collect();
        let body = request(&Resource::new("svc"), events).encode_to_vec();
        let opts = ReceiveOptions::default();
        let view = RequestView::from_protobuf(&body, usize::MAX, opts.limits).unwrap();
        let (mut schemas, mut slots, mut buffers) = (Schemas::default(), Slots::default(), KindBuffers::new(7));
        let mut written = Vec::new();
        for lr in &view.records {
            let r = read_record(&view, lr, &opts, &mut schemas, &mut slots, &mut buffers).unwrap();
            if let Fields::Written(w) = r.fields {
                written.push((record_kind(lr, &schemas).unwrap(), w.buffer));
            }
        }
        assert_eq!(
            written,
            [
                ("relay_usage", 0),
                ("optimizer_qos", 1),
                ("relay_usage", 0),
                ("optimizer_qos", 1),
                ("relay_usage", 0)
            ],
            "network_event, which has a string map, becomes a Record"
        );
        assert_eq!(buffers.share().0.len(), 2);
    }
}
