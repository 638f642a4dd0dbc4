//! A fault proxy in front of the gateway: every request is forwarded and answered by
//! the gateway (so its events are committed), then on some requests the answer is
//! lost on the way back, as a load balancer or a timeout loses it. The client cannot
//! tell the request was taken and sends it again: exactly the retry that must not bill twice.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

/// What the proxy did, for the e2e table.
#[derive(Default)]
pub struct Faults {
    /// Requests forwarded to the gateway (each got an answer there).
    pub forwarded: AtomicUsize,
    /// Answers dropped: the client saw the connection close.
    pub dropped: AtomicUsize,
    /// Answers replaced by `502 Bad Gateway` (`Retry-After: 0`).
    pub bad_gateway: AtomicUsize,
}

/// Starts the proxy on a free port; returns its port and its counters. Of every four
/// requests, the 2nd loses its answer and the 4th gets a 502 instead of it.
pub fn start(upstream: u16) -> (u16, Arc<Faults>) {
    listen(upstream, serve)
}

/// A proxy on a free port, each client connection served by `serve` on its own thread.
pub fn listen(upstream: u16, serve: fn(TcpStream, u16, &Faults) -> std::io::Result<()>) -> (u16, Arc<Faults>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
    let port = listener.local_addr().expect("proxy address").port();
    let faults = Arc::new(Faults::default());
    let counters = faults.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let faults = counters.clone();
            std::thread::spawn(move || {
                let _ = serve(client, upstream, &faults);
            });
        }
    });
    (port, faults)
}

/// One request per connection: forward, read the whole answer, then deliver, drop or replace it.
fn serve(mut client: TcpStream, upstream: u16, faults: &Faults) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    let Some(request) = read_request(&mut client)? else {
        return Ok(());
    };
    let mut gateway = TcpStream::connect(("127.0.0.1", upstream))?;
    gateway.write_all(&request)?;
    let mut answer = Vec::new();
    gateway.read_to_end(&mut answer)?;
    let n = faults.forwarded.fetch_add(1, SeqCst);
    match n % 4 {
        1 => {
            faults.dropped.fetch_add(1, SeqCst);
            client.shutdown(Shutdown::Both)
        }
        3 => {
            faults.bad_gateway.fetch_add(1, SeqCst);
            client.write_all(
                b"HTTP/1.1 502 Bad Gateway\r\nretry-after: 0\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
        }
        _ => client.write_all(&answer),
    }
}

/// The request's head (with `connection: close`, so the gateway ends the answer by
/// closing) and its body (`content-length`, or chunked as Node sends it, forwarded
/// as it came); `None` when the client sent nothing.
fn read_request(client: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let mut out = format!("{}\r\n", lines.next().unwrap_or_default());
    let mut length = 0usize;
    let mut chunked = false;
    for line in lines {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:") || lower.starts_with("keep-alive:") {
            continue;
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("connection: close\r\n\r\n");
    let mut body = buf[head_end..].to_vec();
    while chunked && !chunked_complete(&body) {
        let n = client.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    while body.len() < length {
        let n = client.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let mut request = out.into_bytes();
    request.extend_from_slice(&body);
    Ok(Some(request))
}

/// Whether a chunked body has arrived whole (its zero-length last chunk included).
fn chunked_complete(body: &[u8]) -> bool {
    let mut at = 0;
    loop {
        let Some(line_end) = body[at..].windows(2).position(|w| w == b"\r\n") else {
            return false;
        };
        let size_text = String::from_utf8_lossy(&body[at..at + line_end]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16) else {
            return false;
        };
        at += line_end + 2;
        if size == 0 {
            return body[at..].windows(2).any(|w| w == b"\r\n");
        }
        at += size + 2;
        if at > body.len() {
            return false;
        }
    }
}
