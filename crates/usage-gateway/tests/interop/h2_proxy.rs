//! The fault proxy for HTTP/2 (OTLP/gRPC): bytes pass both ways unchanged, except
//! that the gateway's answers are read frame by frame, and when the 2nd of every
//! four answers begins (its first HEADERS frame: the gateway has committed the
//! events by then) the connection is cut instead. The gRPC client sees UNAVAILABLE
//! and sends the same request again: the retry that must not bill twice.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

pub use crate::proxy::Faults;

/// HTTP/2 frame types the proxy looks at.
const HEADERS: u8 = 0x1;

/// Starts the proxy on a free port; returns its port and its counters.
pub fn start(upstream: u16) -> (u16, Arc<Faults>) {
    crate::proxy::listen(upstream, serve)
}

fn serve(client: TcpStream, upstream: u16, faults: &Faults) -> std::io::Result<()> {
    let gateway = TcpStream::connect(("127.0.0.1", upstream))?;
    let (mut to_gateway, mut from_client) = (gateway.try_clone()?, client.try_clone()?);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_gateway);
        let _ = to_gateway.shutdown(Shutdown::Write);
    });
    let result = answers(gateway, &client, faults);
    let _ = client.shutdown(Shutdown::Both);
    result
}

/// Forwards the gateway's frames until it closes or an answer is to be lost.
fn answers(mut gateway: TcpStream, mut client: &TcpStream, faults: &Faults) -> std::io::Result<()> {
    let mut answered = std::collections::HashSet::new();
    loop {
        let mut head = [0u8; 9];
        gateway.read_exact(&mut head)?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        gateway.read_exact(&mut payload)?;
        if head[3] == HEADERS && stream != 0 && answered.insert(stream) {
            let n = faults.forwarded.fetch_add(1, SeqCst);
            if n % 4 == 1 {
                faults.dropped.fetch_add(1, SeqCst);
                let _ = gateway.shutdown(Shutdown::Both);
                return Ok(());
            }
        }
        client.write_all(&head)?;
        client.write_all(&payload)?;
    }
}
