//! A TCP proxy the suite can pause: while paused it accepts connections and closes
//! them at once, and it cuts every open one, so the exporter sees its backend down
//! while the backend keeps what it already acknowledged. Used for backends that
//! keep their data only in memory (tansu, moto), where a real restart would lose it.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

/// A pausable TCP forwarder on 127.0.0.1.
pub struct TcpProxy {
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    port: u16,
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl TcpProxy {
    /// Listens on `127.0.0.1:port` (0 for any) and forwards to `target`.
    pub fn start(port: u16, target: SocketAddr) -> io::Result<TcpProxy> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let port = listener.local_addr()?.port();
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, open2) = (up.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !up2.load(SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                if let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
                    client.try_clone(),
                    server.try_clone(),
                    client.try_clone(),
                    server.try_clone(),
                ) {
                    if let Ok(mut o) = open2.lock() {
                        o.push(c3);
                        o.push(s3);
                    }
                    std::thread::spawn(move || pipe(client, s2));
                    std::thread::spawn(move || pipe(server, c2));
                }
            }
        });
        Ok(TcpProxy { up, open, port })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Refuses new connections (accept-and-close) and cuts the open ones.
    pub fn pause(&self) {
        self.up.store(false, SeqCst);
        if let Ok(mut o) = self.open.lock() {
            for s in o.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    /// Forwards again.
    pub fn resume(&self) {
        self.up.store(true, SeqCst);
    }
}
