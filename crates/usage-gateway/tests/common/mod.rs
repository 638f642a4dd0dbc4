//! What the gateway's tests share: a raw HTTP client (so every byte sent is the
//! test's), bodies, and serving a gateway on a free port.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use usage_core::{json, Event, RelayUsage, Resource};
use usage_gateway::Gateway;

pub struct Reply {
    pub status: u16,
    /// The head, lower-cased.
    pub headers: String,
    pub body: String,
}

/// One HTTP/1.1 request on its own connection; `/v1/metrics` bodies are declared
/// JSON unless the test declares otherwise.
pub async fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head(method, path, headers, body.len()).as_bytes())
        .await
        .unwrap();
    s.write_all(body).await.unwrap();
    read_reply(&mut s).await
}

/// A request that declares a body of `declared` bytes and sends none of it: what a
/// gateway that refuses by the declared length answers.
pub async fn request_declaring(addr: &str, path: &str, headers: &[(&str, &str)], declared: usize) -> Reply {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head("POST", path, headers, declared).as_bytes())
        .await
        .unwrap();
    read_reply(&mut s).await
}

/// A request head; `/v1/metrics` bodies are declared JSON unless `headers` say otherwise.
fn head(method: &str, path: &str, headers: &[(&str, &str)], len: usize) -> String {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {len}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if path == "/v1/metrics" && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        req.push_str("content-type: application/json\r\n");
    }
    req.push_str("\r\n");
    req
}

/// Reads an answer to its end.
pub async fn read_reply(s: &mut tokio::net::TcpStream) -> Reply {
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Reply {
        status,
        headers: head.to_lowercase(),
        body: body.to_string(),
    }
}

/// A `/v1/metrics` body of these events.
pub fn batch(events: &[Event]) -> Vec<u8> {
    let mut out = b"{\"events\":[".to_vec();
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_event(&mut out, e, &Resource::new("client"));
    }
    out.extend_from_slice(b"]}");
    out
}

/// `n` relay_usage events of `project`, cu 0..n.
pub fn relays(project: &str, n: u64) -> Vec<Event> {
    (0..n)
        .map(|cu| {
            Event::new(RelayUsage {
                project: project.into(),
                cu,
                ..Default::default()
            })
        })
        .collect()
}

/// Serves `gateway` (the real listener: limits, timeouts) on a free port; its address.
pub async fn serve(gateway: &Arc<Gateway>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(usage_gateway::serve(
        gateway.clone(),
        listener,
        std::future::pending(),
        Duration::ZERO,
    ));
    addr
}
