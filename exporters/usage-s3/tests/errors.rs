//! How S3 answers map to pipeline actions, against an in-process fake that returns
//! canned responses. The real-store proof is the conformance suite (moto).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use usage_core::{Batch, Event, ExportError, Exporter, ExporterSection, RelayUsage, Resource};
use usage_s3::{S3Config, S3Exporter};

/// Serves `status` + `body` to every request; returns the endpoint.
fn fake(status: &'static str, body: &'static str) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = vec![0u8; 1 << 20];
            let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(300)));
            let _ = s.read(&mut buf);
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes());
        }
    });
    format!("http://127.0.0.1:{port}")
}

fn exporter(endpoint: &str) -> S3Exporter {
    let cfg: S3Config = ExporterSection::new("s", "s3")
        .set("bucket", "b")
        .set("endpoint", endpoint)
        .set("access_key_id", "AK")
        .set("secret_access_key", "SK")
        .parse()
        .unwrap();
    S3Exporter::new(&cfg, "exporters.s").unwrap()
}

fn batch() -> Batch {
    Batch::from_events(vec![Event::new(RelayUsage::default())], Arc::new(Resource::default()))
}

fn err_xml(code: &str) -> String {
    format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>m</Message></Error>")
}

/// (HTTP status line, body, what the error must be)
type Case = (&'static str, String, fn(&ExportError) -> bool);

#[tokio::test]
async fn answers_map_to_retry_pause_split_or_reject() {
    let cases: [Case; 10] = [
        ("403 Forbidden", err_xml("AccessDenied"), |e| {
            matches!(e, ExportError::Paused { .. })
        }),
        ("404 Not Found", err_xml("NoSuchBucket"), |e| {
            matches!(e, ExportError::Paused { .. })
        }),
        ("503 Service Unavailable", err_xml("SlowDown"), |e| {
            matches!(e, ExportError::Retryable { .. })
        }),
        ("500 Internal Server Error", err_xml("InternalError"), |e| {
            matches!(e, ExportError::Retryable { .. })
        }),
        ("400 Bad Request", err_xml("EntityTooLarge"), |e| {
            matches!(e, ExportError::TooLarge { .. })
        }),
        ("400 Bad Request", err_xml("InvalidArgument"), |e| {
            matches!(e, ExportError::Rejected { .. })
        }),
        // Transient though 4xx (review L6).
        ("403 Forbidden", err_xml("RequestTimeTooSkewed"), |e| {
            matches!(e, ExportError::Retryable { .. })
        }),
        ("409 Conflict", err_xml("OperationAborted"), |e| {
            matches!(e, ExportError::Retryable { .. })
        }),
        // Another conditional write to the same key is in flight.
        ("409 Conflict", err_xml("ConditionalRequestConflict"), |e| {
            matches!(e, ExportError::Retryable { .. })
        }),
        // A store without If-None-Match: an operator switches conditional writes off.
        ("501 Not Implemented", err_xml("NotImplemented"), |e| {
            matches!(e, ExportError::Paused { .. }) && e.to_string().contains("conditional_writes = false")
        }),
    ];
    for (status, body, expect) in cases {
        let body: &'static str = Box::leak(body.into_boxed_str());
        let e = exporter(&fake(status, body)).export(&batch()).await.unwrap_err();
        assert!(expect(&e), "{status}: got {e:?}");
        assert!(e.to_string().contains("s3://b/"), "{e}");
    }
    // Nothing listening: retryable.
    let e = exporter("http://127.0.0.1:1").export(&batch()).await.unwrap_err();
    assert!(matches!(e, ExportError::Retryable { .. }), "{e:?}");
    // The message says why, not only the SDK's outer "dispatch failure".
    let text = e.to_string();
    assert!(!text.contains(": :"), "{text}");
    assert!(text.to_lowercase().contains("connect"), "{text}");
}

#[test]
fn keys_follow_the_hive_layout_and_config_is_checked() {
    let x = exporter("http://127.0.0.1:1");
    assert_eq!(
        x.key("relay_usage", "year=2026/month=11/day=21/hour=10", "abc"),
        "relay_usage/year=2026/month=11/day=21/hour=10/part-abc.ndjson.gz"
    );
    let half: Result<S3Config, _> = ExporterSection::new("s", "s3")
        .set("bucket", "b")
        .set("access_key_id", "AK")
        .parse();
    let e = S3Exporter::new(&half.unwrap(), "exporters.s")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("set both access_key_id and secret_access_key"), "{e}");
    assert!(!format!(
        "{:?}",
        ExporterSection::new("s", "s3").set("secret_access_key", "SK123")
    )
    .contains("SK123"));
}

/// Review L6: a multipart upload whose completion fails is aborted, not left as
/// billed parts. The store is scripted: no object yet, the upload starts, its part
/// lands, the completion fails with a 500.
#[tokio::test]
async fn a_failed_completion_aborts_the_multipart_upload() {
    use usage_conformance::{Answer, FaultServer, Request};
    let script = Arc::new(|_: usize, r: &Request| {
        let line = r.head.lines().next().unwrap_or_default().to_string();
        let xml = |body: &str| Answer::Status(200, vec![("content-type", "application/xml".into())], body.into());
        if line.starts_with("head ") {
            Answer::status(404)
        } else if line.starts_with("post ") && line.contains("?uploads") {
            xml("<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>up-1</UploadId></InitiateMultipartUploadResult>")
        } else if line.starts_with("put ") && line.contains("partnumber=") {
            Answer::Status(200, vec![("etag", "\"e1\"".into())], String::new())
        } else if line.starts_with("post ") && line.contains("uploadid=") {
            Answer::Status(
                500,
                vec![("content-type", "application/xml".into())],
                err_xml("InternalError"),
            )
        } else if line.starts_with("delete ") {
            Answer::status(204)
        } else {
            Answer::status(400)
        }
    });
    let server = FaultServer::start(Arc::new(|_: &Request| Vec::new()), script)
        .await
        .unwrap();
    let cfg: S3Config = ExporterSection::new("s", "s3")
        .set("bucket", "b")
        .set("endpoint", format!("http://{}", server.addr).as_str())
        .set("access_key_id", "AK")
        .set("secret_access_key", "SK")
        .set("compression", "none")
        .set("multipart_threshold", "5MiB")
        .parse()
        .unwrap();
    let exporter = S3Exporter::new(&cfg, "exporters.s").unwrap();
    // About 6 MB uncompressed: over the threshold, so multipart.
    let events = (0..20_000)
        .map(|i| {
            Event::new(RelayUsage {
                project: "acme-with-a-longer-project-name".into(),
                api_method: "eth_getBlockByNumber".into(),
                cu: i,
                ..Default::default()
            })
        })
        .collect();
    let batch = Batch::from_events(events, Arc::new(Resource::default()));
    let e = exporter.export(&batch).await.unwrap_err();
    assert!(matches!(e, ExportError::Retryable { .. }), "{e:?}");
    let lines: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.head.lines().next().unwrap_or_default().to_string())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("delete ") && l.contains("uploadid=up-1")),
        "the upload was aborted: {lines:?}"
    );
}

/// One part whose key holds a foreign object costs only its own events: the
/// batch's other part is written, and only the refused part's events are named.
#[tokio::test]
async fn a_refused_part_costs_only_its_own_events() {
    use usage_conformance::{Answer, FaultServer, Request};
    let script = Arc::new(|_: usize, r: &Request| {
        let line = r.head.lines().next().unwrap_or_default().to_string();
        let taken = line.contains("hour%3d10");
        if line.starts_with("put ") && taken {
            Answer::status(412)
        } else if line.starts_with("put ") {
            Answer::status(200)
        } else if line.starts_with("head ") && taken {
            Answer::Status(
                200,
                vec![("x-amz-meta-usage-batch", "someone-else".into())],
                String::new(),
            )
        } else {
            Answer::status(404)
        }
    });
    let server = FaultServer::start(Arc::new(|_: &Request| Vec::new()), script)
        .await
        .unwrap();
    let exporter = exporter(&format!("http://{}", server.addr));
    let at = |hour: u32, cu: u64| {
        let ts = usage_core::Timestamp::parse_rfc3339(&format!("2026-11-21T{hour:02}:30:00Z")).unwrap();
        Event::at(
            ts,
            RelayUsage {
                cu,
                ..Default::default()
            },
        )
    };
    // Interleaved hours: the refused part's positions are 0, 2, 4.
    let events = vec![at(10, 0), at(11, 1), at(10, 2), at(11, 3), at(10, 4)];
    let batch = Batch::from_events(events, Arc::new(Resource::default()));
    let result = exporter.export(&batch).await;
    let lines: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.head.lines().next().unwrap_or_default().to_string())
        .collect();
    match result {
        Err(ExportError::PartiallyRejected { indices, message }) => {
            assert_eq!(indices, [0, 2, 4]);
            assert!(message.contains("not overwritten"), "{message}");
        }
        other => panic!("{other:?} after {lines:?}"),
    }
    assert!(
        lines.iter().any(|l| l.starts_with("put ") && l.contains("hour%3d11")),
        "the other part was written: {lines:?}"
    );
}
