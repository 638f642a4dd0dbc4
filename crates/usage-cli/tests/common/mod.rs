//! What the CLI tests that run `usage gateway` share.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A `usage gateway` process, killed when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free now, never one this process handed out before: tests run in
/// parallel, and the kernel may offer a port again once its probe is closed.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Starts `usage gateway --config CONFIG` and waits until it listens on `port`;
/// its stderr goes to `CONFIG.stderr`, shown if it exits or never listens.
pub fn start_gateway(config: &Path, port: u16) -> Running {
    let log = config.with_extension("stderr");
    let file = std::fs::File::create(&log).unwrap();
    start_gateway_logged(config, port, file.into(), Some(&log))
}

/// [`start_gateway`], its stderr going to `stderr`.
pub fn start_gateway_with_stderr(config: &Path, port: u16, stderr: Stdio) -> Running {
    start_gateway_logged(config, port, stderr, None)
}

fn start_gateway_logged(config: &Path, port: u16, stderr: Stdio, log: Option<&Path>) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_usage"))
        .args(["gateway", "--config", &config.display().to_string()])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let end = Instant::now() + Duration::from_secs(30);
    let stderr_text = || log.and_then(|l| std::fs::read_to_string(l).ok()).unwrap_or_default();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = running.0.try_wait().unwrap() {
            panic!(
                "usage gateway exited ({status}) before listening on {port}: {}",
                stderr_text()
            );
        }
        assert!(
            Instant::now() < end,
            "usage gateway did not listen on {port}: {}",
            stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    running
}

/// The binary in `dir`, without the caller's config, log or progress variables.
pub fn usage_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_usage"));
    c.args(args).current_dir(dir);
    for var in [
        "USAGE_CONFIG",
        "RUST_LOG",
        "USAGE_LOG",
        "USAGE_LOG_FORMAT",
        "USAGE_PROGRESS",
    ] {
        c.env_remove(var);
    }
    c
}

pub fn usage_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    usage_cmd(dir, args)
        .envs(env.iter().copied())
        .output()
        .expect("run usage")
}

pub fn usage(dir: &Path, args: &[&str]) -> Output {
    usage_env(dir, args, &[])
}

/// stdout and stderr as text.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

pub fn total_line(report: &str) -> Vec<u64> {
    let line = report.lines().find(|l| l.starts_with("TOTAL")).expect("a TOTAL line");
    line.split_whitespace()
        .filter_map(|w| w.replace(',', "").parse().ok())
        .collect()
}

/// The first `.ndjson.zst` part under `dir`, searched depth-first.
pub fn first_part(dir: &Path) -> std::path::PathBuf {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            return first_part(&p);
        }
        if p.to_string_lossy().ends_with(".ndjson.zst") {
            return p;
        }
    }
    panic!("no part under {}", dir.display())
}

/// A JSON POST with key `k1` on its own connection: (status, body).
pub fn post_json(port: u16, path: &str, body: &str) -> (u16, String) {
    exchange(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer k1\r\ncontent-type: application/json\r\n\
             connection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// A GET on its own connection: (status, body).
pub fn get(port: u16, path: &str) -> (u16, String) {
    exchange(
        port,
        &format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"),
    )
}

/// Sends a whole request and reads the answer to its end: (status, body).
fn exchange(port: u16, request: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (status, body.unwrap_or_default())
}

/// An OTLP/JSON log record of `kind` with these attributes.
pub fn record(kind: &str, attrs: &str) -> String {
    format!(r#"{{"timeUnixNano":"1764633600000000000","body":{{"stringValue":"{kind}"}},"attributes":[{attrs}]}}"#)
}
