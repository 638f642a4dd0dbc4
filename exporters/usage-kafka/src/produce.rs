//! Messages handed to librdkafka through a topic handle kept per topic.
//!
//! rust-rdkafka's `send` copies the topic name into a new C string for every
//! message, and librdkafka then looks the topic up by that name under the
//! client's lock (which its broker threads take too): with one message per event
//! that was about 1.5% of the gateway's instructions. Here the topic is looked up
//! once (`rd_kafka_topic_new`) and each message is produced with its handle
//! (`rd_kafka_produceva` with `RD_KAFKA_VTYPE_RKT`), which only counts a
//! reference. Delivery reports still arrive through the producer's poll, with the
//! same opaque, as for messages sent through `send`.

use crate::headers::Headers;
use rdkafka::bindings as rdsys;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use std::ffi::{c_void, CString};
use std::ptr::NonNull;
use std::sync::Arc;

/// `RD_KAFKA_PARTITION_UA` (a C macro, not in the bindings): librdkafka's
/// partitioner places the message.
const PARTITION_UNASSIGNED: i32 = -1;

/// One message: librdkafka copies the payload, key and headers before
/// [`TopicHandle::produce`] returns.
pub(crate) struct Outgoing<'a> {
    pub(crate) payload: &'a [u8],
    pub(crate) key: Option<&'a [u8]>,
    /// `None`: librdkafka's partitioner places it.
    pub(crate) partition: Option<i32>,
    pub(crate) timestamp_ms: i64,
    pub(crate) headers: Headers<'a>,
    /// Comes back with the message's delivery report.
    pub(crate) opaque: usize,
}

/// librdkafka's handle of one topic, with a reference to the producer it
/// belongs to (so the client outlives the handle).
pub(crate) struct TopicHandle<C: ProducerContext + 'static> {
    rkt: NonNull<rdsys::rd_kafka_topic_t>,
    producer: Arc<BaseProducer<C>>,
}

// SAFETY: librdkafka's topic handles are reference-counted and may be used and
// released from any thread (its producer API is thread-safe); this type only
// produces through the handle and releases it once, on drop.
unsafe impl<C: ProducerContext + 'static> Send for TopicHandle<C> {}
// SAFETY: as above; `produce` takes `&self` and librdkafka locks internally.
unsafe impl<C: ProducerContext + 'static> Sync for TopicHandle<C> {}

impl<C: ProducerContext + 'static> TopicHandle<C> {
    /// The handle of `topic`, asking librdkafka for its metadata if it is new to
    /// this producer; the error librdkafka gives when it cannot make one.
    pub(crate) fn new(producer: &Arc<BaseProducer<C>>, topic: &str) -> Result<Self, RDKafkaErrorCode> {
        let name = CString::new(topic).map_err(|_| RDKafkaErrorCode::InvalidTopic)?;
        // SAFETY: the client pointer is valid while `producer` lives and `name` is
        // a NUL-terminated string that librdkafka copies.
        let rkt =
            unsafe { rdsys::rd_kafka_topic_new(producer.client().native_ptr(), name.as_ptr(), std::ptr::null_mut()) };
        match NonNull::new(rkt) {
            Some(rkt) => Ok(TopicHandle {
                rkt,
                producer: producer.clone(),
            }),
            // SAFETY: reads this thread's last librdkafka error, set by the failed call.
            None => Err(RDKafkaErrorCode::from(unsafe { rdsys::rd_kafka_last_error() })),
        }
    }

    /// Hands `m` to librdkafka (payload, key and headers copied); the error code
    /// when it refuses the message at once (`QueueFull` when its queue is full).
    pub(crate) fn produce(&self, m: &Outgoing<'_>) -> Result<(), RDKafkaErrorCode> {
        use rdsys::rd_kafka_vtype_t as V;
        // The union of a `rd_kafka_vu_t`: one member set per entry, as its type says.
        let vu = |vtype, u| rdsys::rd_kafka_vu_t { vtype, u };
        let mem = |bytes: &[u8]| rdsys::rd_kafka_vu_s__bindgen_ty_1 {
            mem: rdsys::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 {
                ptr: bytes.as_ptr() as *mut c_void,
                size: bytes.len(),
            },
        };
        // Six entries always, then the key and up to three headers.
        let mut list = [
            vu(
                V::RD_KAFKA_VTYPE_RKT,
                rdsys::rd_kafka_vu_s__bindgen_ty_1 { rkt: self.rkt.as_ptr() },
            ),
            vu(
                V::RD_KAFKA_VTYPE_PARTITION,
                rdsys::rd_kafka_vu_s__bindgen_ty_1 {
                    i32_: m.partition.unwrap_or(PARTITION_UNASSIGNED),
                },
            ),
            vu(
                V::RD_KAFKA_VTYPE_MSGFLAGS,
                rdsys::rd_kafka_vu_s__bindgen_ty_1 {
                    i: rdsys::RD_KAFKA_MSG_F_COPY,
                },
            ),
            vu(V::RD_KAFKA_VTYPE_VALUE, mem(m.payload)),
            vu(
                V::RD_KAFKA_VTYPE_OPAQUE,
                rdsys::rd_kafka_vu_s__bindgen_ty_1 {
                    ptr: m.opaque as *mut c_void,
                },
            ),
            vu(
                V::RD_KAFKA_VTYPE_TIMESTAMP,
                rdsys::rd_kafka_vu_s__bindgen_ty_1 { i64_: m.timestamp_ms },
            ),
            vu(V::RD_KAFKA_VTYPE_END, rdsys::rd_kafka_vu_s__bindgen_ty_1 { i: 0 }),
            vu(V::RD_KAFKA_VTYPE_END, rdsys::rd_kafka_vu_s__bindgen_ty_1 { i: 0 }),
            vu(V::RD_KAFKA_VTYPE_END, rdsys::rd_kafka_vu_s__bindgen_ty_1 { i: 0 }),
            vu(V::RD_KAFKA_VTYPE_END, rdsys::rd_kafka_vu_s__bindgen_ty_1 { i: 0 }),
        ];
        let mut n = 6;
        if let Some(key) = m.key {
            list[n] = vu(V::RD_KAFKA_VTYPE_KEY, mem(key));
            n += 1;
        }
        for (name, value) in m.headers.as_slice() {
            let header = rdsys::rd_kafka_vu_s__bindgen_ty_1 {
                header: rdsys::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_2 {
                    name: name.as_ptr(),
                    val: value.as_ptr() as *const c_void,
                    size: value.len() as isize,
                },
            };
            list[n] = vu(V::RD_KAFKA_VTYPE_HEADER, header);
            n += 1;
        }
        let list = &list[..n];
        // SAFETY: every entry's union member matches its vtype; the pointers are
        // valid for the call (librdkafka copies payload, key, header names and
        // values with RD_KAFKA_MSG_F_COPY); the topic handle and the client live
        // while `self` does. On failure librdkafka frees what it made (the
        // headers list included) and returns an error object we must destroy.
        unsafe {
            let error = rdsys::rd_kafka_produceva(self.producer.client().native_ptr(), list.as_ptr(), list.len());
            if error.is_null() {
                return Ok(());
            }
            let code = rdsys::rd_kafka_error_code(error);
            rdsys::rd_kafka_error_destroy(error);
            Err(RDKafkaErrorCode::from(code))
        }
    }
}

impl<C: ProducerContext + 'static> Drop for TopicHandle<C> {
    fn drop(&mut self) {
        // SAFETY: the handle came from `rd_kafka_topic_new` and is released once;
        // the client is still alive (`self.producer`).
        unsafe { rdsys::rd_kafka_topic_destroy(self.rkt.as_ptr()) }
    }
}
