//! OTLP/gRPC against the real HTTP/2 listener: framing, trailers, status codes,
//! compressed messages, partial success. A raw hyper HTTP/2 client, so every byte
//! of the call is the test's; the SDK row (`cargo xtask e2e`) drives a real OTel
//! gRPC exporter.

mod common;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use usage_core::{Event, Resource, UsageConfig};
use usage_gateway::{Gateway, Listeners};
use usage_otlp_proto::opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;

const EXPORT: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// A gateway serving ingest and OTLP/gRPC; (grpc address, gateway).
async fn start(dir: &std::path::Path) -> (String, Arc<Gateway>) {
    usage_core::link_exporters!(usage_file);
    let toml = format!(
        "[pipeline]\nflush_interval = \"20ms\"\ndata_dir = \"{d}/data\"\n[spool]\npath = \"{d}/spool\"\n\
         [gateway]\notlp_grpc = true\nmax_events = 500\n\
         [[gateway.keys]]\nkey = \"k\"\nname = \"lava\"\n\
         [exporters.out]\ntype = \"file\"\npath = \"{d}/out\"\n",
        d = dir.display()
    );
    let gw = Gateway::new(&UsageConfig::from_toml(&toml).unwrap()).unwrap();
    let ingest = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = grpc.local_addr().unwrap().to_string();
    let listeners = Listeners {
        ingest,
        otlp_grpc: Some(grpc),
        admin: None,
    };
    tokio::spawn(usage_gateway::serve_on(
        gw.clone(),
        listeners,
        std::future::pending(),
        Duration::ZERO,
    ));
    (addr, gw)
}

struct Answer {
    http: u16,
    headers: hyper::HeaderMap,
    trailers: hyper::HeaderMap,
    body: Bytes,
}

impl Answer {
    /// grpc-status from the trailers, or the headers of a trailers-only answer.
    fn status(&self) -> String {
        let from = |h: &hyper::HeaderMap| h.get("grpc-status").map(|v| v.to_str().unwrap().to_string());
        from(&self.trailers).or_else(|| from(&self.headers)).unwrap_or_default()
    }

    fn message(&self) -> String {
        let m = self.headers.get("grpc-message").map(|v| v.to_str().unwrap());
        m.unwrap_or_default().to_string()
    }

    fn response(&self) -> ExportLogsServiceResponse {
        assert_eq!(self.body[0], 0, "the answer is not compressed");
        let len = u32::from_be_bytes(self.body[1..5].try_into().unwrap()) as usize;
        assert_eq!(len, self.body.len() - 5);
        ExportLogsServiceResponse::decode(&self.body[5..]).unwrap()
    }
}

/// One unary call on a fresh HTTP/2 connection (prior knowledge, as SDKs send it).
async fn call(addr: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::post(format!("http://{addr}{EXPORT}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send
        .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let http = resp.status().as_u16();
    let headers = resp.headers().clone();
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    Answer {
        http,
        headers,
        trailers,
        body: collected.to_bytes(),
    }
}

fn frame(compressed: bool, message: &[u8]) -> Vec<u8> {
    let mut out = vec![compressed as u8];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

fn request_of(events: &[Event]) -> Vec<u8> {
    usage_otlp_proto::proto::request(&Resource::new("lava-rpcconsumer"), events).encode_to_vec()
}

fn stored(dir: &std::path::Path) -> Vec<Event> {
    let mut out = Vec::new();
    usage_file::read::scan(&dir.join("out"), &Default::default(), |e| out.push(e)).unwrap();
    out
}

const GRPC: (&str, &str) = ("content-type", "application/grpc");
const KEY: (&str, &str) = ("authorization", "Bearer k");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_export_is_durable_before_its_ok_and_names_refused_records() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, gw) = start(dir.path()).await;
    let mut events = common::relays("acme", 40);
    // A record the schema refuses: its neighbours must still be taken.
    let mut bad = usage_otlp_proto::proto::request(&Resource::new("lava"), &events[..1]);
    bad.resource_logs[0].scope_logs[0].log_records[0]
        .attributes
        .retain(|a| a.key != "cu");
    let mut req = usage_otlp_proto::proto::request(&Resource::new("lava"), &events);
    req.resource_logs[0].scope_logs[0]
        .log_records
        .push(bad.resource_logs[0].scope_logs[0].log_records[0].clone());
    let a = call(&addr, &[GRPC, KEY], frame(false, &req.encode_to_vec())).await;
    assert_eq!((a.http, a.status()), (200, "0".to_string()), "{}", a.message());
    assert_eq!(a.headers["content-type"], "application/grpc");
    let partial = a.response().partial_success.expect("partial success");
    assert_eq!(partial.rejected_log_records, 1);
    assert!(partial.error_message.contains("`cu`"), "{}", partial.error_message);
    gw.pipeline().flush(Duration::from_secs(10)).await.unwrap();
    let mut got: Vec<_> = stored(dir.path()).iter().map(Event::id).collect();
    got.sort();
    events.sort_by_key(Event::id);
    let want: Vec<_> = events.iter().map(Event::id).collect();
    assert_eq!(got, want, "the 40 valid records, once each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_and_zstd_messages_are_inflated_and_a_resend_keeps_its_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, gw) = start(dir.path()).await;
    let message = request_of(&common::relays("acme", 25));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&message).unwrap();
    let gzipped = frame(true, &gz.finish().unwrap());
    let zstd = frame(true, &zstd::encode_all(&message[..], 1).unwrap());
    for (encoding, body) in [("gzip", gzipped.clone()), ("zstd", zstd), ("gzip", gzipped)] {
        let a = call(&addr, &[GRPC, KEY, ("grpc-encoding", encoding)], body).await;
        assert_eq!(a.status(), "0", "{encoding}: {}", a.message());
        assert!(a.response().partial_success.is_none());
    }
    gw.pipeline().flush(Duration::from_secs(10)).await.unwrap();
    let got = stored(dir.path());
    let unique: std::collections::HashSet<_> = got.iter().map(Event::id).collect();
    assert_eq!(unique.len(), 25, "three sends of one request are one set of events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_the_grpc_code_a_client_retries_or_drops_by() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _gw) = start(dir.path()).await;
    let ok_message = frame(false, &request_of(&common::relays("acme", 2)));
    type Case<'a> = (&'a [(&'a str, &'a str)], Vec<u8>, &'a str, &'a str);
    let cases: [Case; 5] = [
        (&[GRPC], ok_message.clone(), "16", "missing or invalid bearer key"),
        (&[GRPC, KEY], vec![0, 0, 0], "3", "5-byte prefix"),
        (&[GRPC, KEY], frame(false, b"\xff\xff"), "3", "invalid OTLP protobuf"),
        (&[GRPC, KEY], frame(true, b"\x1f\x8b"), "3", "no grpc-encoding"),
        (
            &[GRPC, KEY, ("grpc-encoding", "snappy")],
            ok_message.clone(),
            "12",
            "grpc-encoding \"snappy\" is not supported",
        ),
    ];
    for (headers, body, code, needle) in cases {
        let a = call(&addr, headers, body).await;
        assert_eq!(a.http, 200, "gRPC errors travel in a 200");
        assert_eq!(a.status(), code, "{needle}: {}", a.message());
        assert!(a.message().contains(needle), "{}", a.message());
        assert!(a.body.is_empty(), "trailers-only");
    }
    let a = call(&addr, &[("content-type", "application/json"), KEY], ok_message).await;
    assert_eq!(a.http, 415, "not a gRPC client: answered in HTTP");
    let other = {
        let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let (mut send, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::post(format!(
            "http://{addr}/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        ))
        .header("content-type", "application/grpc")
        .body(Full::new(Bytes::new()))
        .unwrap();
        send.send_request(req).await.unwrap()
    };
    assert_eq!(other.headers()["grpc-status"], "12", "only the logs service is served");
}

/// A message far larger than the connection's 64 KiB receive window flows through
/// window updates, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_larger_than_the_receive_window_arrives_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, gw) = start(dir.path()).await;
    let events: Vec<Event> = (0..480)
        .map(|cu| {
            Event::new(usage_core::RelayUsage {
                project: "acme".into(),
                origin: "o".repeat(2000).as_str().into(),
                cu,
                ..Default::default()
            })
        })
        .collect();
    let message = request_of(&events);
    assert!(message.len() > 900_000, "{}", message.len());
    let a = call(&addr, &[GRPC, KEY], frame(false, &message)).await;
    assert_eq!(a.status(), "0", "{}", a.message());
    gw.pipeline().flush(Duration::from_secs(10)).await.unwrap();
    assert_eq!(stored(dir.path()).len(), 480);
}
