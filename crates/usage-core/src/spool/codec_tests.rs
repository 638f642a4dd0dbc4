//! Event, schema and resource payloads round-trip; format 1 still decodes.
use super::super::catalog::fingerprint;
use super::*;
use crate::{EventKind, NetworkEvent, OptimizerQos, RelayUsage};

fn sample_events() -> [Event; 3] {
    [
        Event::new(RelayUsage {
            project: "p".into(),
            cu: u64::MAX,
            success: true,
            ..Default::default()
        }),
        Event::new(OptimizerQos {
            selection_latency: -0.25,
            epoch: 9,
            ..Default::default()
        }),
        Event::new(NetworkEvent {
            attributes: vec![("a".into(), "b".into())],
            ..Default::default()
        })
        .with_resource(Arc::new(Resource::new("other"))),
    ]
}

fn assert_same(back: &Event, e: &Event, res: &Arc<Resource>) {
    assert_eq!((back.id(), back.ts(), back.kind()), (e.id(), e.ts(), e.kind()));
    assert_eq!(back.values(), e.values());
    let want = e.resource().cloned().unwrap_or_else(|| res.clone());
    assert_eq!(back.resource().unwrap().as_ref(), want.as_ref());
}

#[test]
fn events_round_trip_by_reference_with_ids_times_values_and_resources() {
    let res = Arc::new(Resource::new("svc").with_instance_id("h-1"));
    let mut res_payload = Vec::new();
    encode_resource(&mut res_payload, &res);
    let mut catalog = Catalog::default();
    assert!(catalog.add_resource_record(fingerprint(&res_payload), &res_payload));
    for e in sample_events() {
        let mut s = Vec::new();
        encode_schema(&mut s, e.schema());
        assert!(catalog.add_schema_record(fingerprint(&s), &s));
        let mut buf = Vec::new();
        encode_event(&mut buf, fingerprint(&s), fingerprint(&res_payload), &e);
        let back = decode_event(&buf, Refs::Catalog(&catalog)).unwrap();
        assert_same(&back, &e, &res);
        // every strict prefix is rejected, never misread
        for cut in 0..buf.len() {
            assert!(decode_event(&buf[..cut], Refs::Catalog(&catalog)).is_err());
        }
        // a reference nothing holds is refused, not guessed
        let empty = Catalog::default();
        assert!(Refs::Catalog(&empty).resolve(&buf).is_none());
        assert!(decode_event(&buf, Refs::Catalog(&empty)).is_err());
    }
    let mut s = Vec::new();
    encode_schema(&mut s, NetworkEvent::schema());
    assert_eq!(&decode_schema(&s).unwrap(), NetworkEvent::schema());
}

#[test]
fn format_1_payloads_still_decode() {
    let res = Arc::new(Resource::new("svc").with_instance_id("h-1"));
    let schemas: Vec<Option<Arc<Schema>>> = sample_events()
        .iter()
        .map(|e| Some(Arc::new(e.schema().clone())))
        .collect();
    let refs = Refs::Segment {
        schemas: &schemas,
        resource: Some(&res),
    };
    for (i, e) in sample_events().iter().enumerate() {
        let mut v2 = Vec::new();
        encode_event(&mut v2, 0, 0, e);
        let v1 = to_format_1(&v2, i as u16);
        assert_same(&decode_event(&v1, refs).unwrap(), e, &res);
        for cut in 0..v1.len() {
            assert!(decode_event(&v1[..cut], refs).is_err());
        }
    }
}

#[test]
fn compiled_kinds_are_known_and_damaged_copies_are_refused() {
    let mut payload = Vec::new();
    encode_schema(&mut payload, RelayUsage::schema());
    let reference = fingerprint(&payload);
    let c = Catalog::with_compiled_kinds();
    assert_eq!(c.schema(reference).map(|s| s.as_ref()), Some(RelayUsage::schema()));

    let mut empty = Catalog::default();
    let mut bent = payload.clone();
    bent[5] ^= 1;
    assert!(!empty.add_schema_record(reference, &bent));
    assert!(empty.schema(reference).is_none());
    assert!(empty.add_schema_record(reference, &payload));
    assert!(empty.schema(reference).is_some());

    let mut res = Vec::new();
    encode_resource(&mut res, &Resource::new("svc"));
    assert!(!empty.add_resource_record(reference, &res));
    assert!(empty.add_resource_record(fingerprint(&res), &res));
    assert_eq!(empty.resource(fingerprint(&res)).unwrap().service_name.as_str(), "svc");
}
