//! A scripted HTTP/1.1 server for fault tests: every request is decoded by the test,
//! answered as its script says (any status and headers, a reset, a slow answer) and
//! kept, with when it came and what it was answered, for the test's assertions.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use usage_core::EventId;

/// What the server does with one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Status, extra headers, body.
    Status(u16, Vec<(&'static str, String)>, String),
    /// Close the connection without answering.
    Reset,
    /// Answer 200 after this long (longer than the client's timeout: a timeout).
    Slow(Duration),
}

impl Answer {
    /// A bare status with no headers and no body.
    pub fn status(code: u16) -> Answer {
        Answer::Status(code, Vec::new(), String::new())
    }

    /// The status a client could see, 0 for a reset.
    fn code(&self) -> u16 {
        match self {
            Answer::Status(code, ..) => *code,
            Answer::Slow(_) => 200,
            Answer::Reset => 0,
        }
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// When it was read completely.
    pub at: Instant,
    /// Request line and headers, lower-cased.
    pub head: String,
    /// The body as sent (still compressed if it was).
    pub body: Vec<u8>,
    /// The event ids the test's decoder found in it.
    pub ids: Vec<EventId>,
    /// What it was answered (0: reset).
    pub status: u16,
}

impl Request {
    /// A header's value, trimmed; empty when absent. `name` is lower case.
    pub fn header(&self, name: &str) -> &str {
        header(&self.head, name)
    }
}

fn header<'a>(head: &'a str, name: &str) -> &'a str {
    head.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(':')))
        .unwrap_or("")
        .trim()
}

/// Decodes a request into the event ids it carries.
pub type Decoder = Arc<dyn Fn(&Request) -> Vec<EventId> + Send + Sync>;
/// Chooses the answer for request number `n` (from 0), already decoded.
pub type Script = Arc<dyn Fn(usize, &Request) -> Answer + Send + Sync>;

/// A running scripted server; it stops with the runtime that started it.
pub struct FaultServer {
    /// Where it listens.
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl FaultServer {
    /// Listens on a free 127.0.0.1 port and serves every connection (keep-alive)
    /// from the current tokio runtime.
    pub async fn start(decode: Decoder, script: Script) -> std::io::Result<FaultServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve(sock, seen.clone(), decode.clone(), script.clone()));
            }
        });
        Ok(FaultServer { addr, requests })
    }

    /// A server that answers every request 200 after `delay`, as one far away does.
    pub async fn slow(decode: Decoder, delay: Duration) -> std::io::Result<FaultServer> {
        Self::start(decode, Arc::new(move |_, _: &Request| Answer::Slow(delay))).await
    }

    /// Whether the second request arrived before the first was answered, `delay`
    /// after it arrived (on a [`FaultServer::slow`] server): the client did not
    /// wait for one answer before posting again. False with fewer than two.
    pub fn second_posted_before_first_answered(&self, delay: Duration) -> bool {
        match self.requests().as_slice() {
            [first, second, ..] => second.at < first.at + delay,
            _ => false,
        }
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The ids of every request answered 2xx.
    pub fn accepted(&self) -> HashSet<EventId> {
        self.requests()
            .into_iter()
            .filter(|r| r.status / 100 == 2)
            .flat_map(|r| r.ids)
            .collect()
    }
}

async fn serve(mut sock: TcpStream, seen: Arc<Mutex<Vec<Request>>>, decode: Decoder, script: Script) {
    while let Some((head, body)) = read_request(&mut sock).await {
        let mut request = Request {
            at: Instant::now(),
            head,
            body,
            ids: Vec::new(),
            status: 0,
        };
        request.ids = decode(&request);
        let answer = {
            let Ok(mut all) = seen.lock() else { return };
            let answer = script(all.len(), &request);
            request.status = answer.code();
            all.push(request);
            answer
        };
        let response = match answer {
            Answer::Reset => return,
            Answer::Slow(d) => {
                tokio::time::sleep(d).await;
                "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_string()
            }
            Answer::Status(code, headers, body) => {
                let mut text = format!("HTTP/1.1 {code} X\r\ncontent-length: {}\r\n", body.len());
                for (k, v) in headers {
                    text.push_str(&format!("{k}: {v}\r\n"));
                }
                text.push_str("\r\n");
                text.push_str(&body);
                text
            }
        };
        if sock.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads one HTTP/1.1 request: its head lower-cased and its body (by Content-Length).
/// `None` when the peer closes first.
pub async fn read_request(sock: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).to_lowercase();
            let len: usize = header(&head, "content-length").parse().unwrap_or(0);
            while buf.len() < p + 4 + len {
                let n = sock.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some((head, buf[p + 4..p + 4 + len].to_vec()));
        }
    }
}
