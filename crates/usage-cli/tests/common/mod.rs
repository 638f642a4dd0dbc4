//! What the CLI tests that run `usage gateway` share.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `usage gateway` process, killed when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `usage gateway --config CONFIG` and waits until it listens on `port`.
pub fn start_gateway(config: &Path, port: u16) -> Running {
    start_gateway_with_stderr(config, port, Stdio::null())
}

/// [`start_gateway`], its stderr going to `stderr`.
pub fn start_gateway_with_stderr(config: &Path, port: u16, stderr: Stdio) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_usage"))
        .args(["gateway", "--config", &config.display().to_string()])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let running = Running(child);
    let end = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "usage gateway did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    running
}
