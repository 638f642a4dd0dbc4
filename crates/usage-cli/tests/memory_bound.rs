//! Review H4 held in a process: `usage gateway` with its default limits, hit by
//! four clients at once with each kind of memory bomb (a gzip bomb, a dense JSON
//! event, an OTLP/JSON body of empty records, an OTLP record of millions of empty
//! attributes, millions of empty resource entries, too many events). Its peak RSS
//! above its idle size stays within the bound it prints at start, which is the
//! formula of docs/operations.md.

mod common;

use common::free_port;
use flate2::write::GzEncoder;
use std::io::{Read, Write};
use std::sync::Arc;

/// `VmRSS` or `VmHWM` of a process, in bytes (Linux).
fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn gzip(parts: &[&[u8]]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for p in parts {
        gz.write_all(p).unwrap();
    }
    gz.finish().unwrap()
}

/// A protobuf length-delimited field: tag, varint length, bytes.
fn put_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    for mut x in [u64::from(field << 3 | 2), bytes.len() as u64] {
        while x >= 0x80 {
            out.push((x as u8) | 0x80);
            x >>= 7;
        }
        out.push(x as u8);
    }
    out.extend_from_slice(bytes);
}

/// POSTs a gzip body; the status.
fn post(port: u16, path: &str, content_type: &str, body: &[u8]) -> u16 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Bearer k\r\ncontent-type: {content_type}\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn peak_memory_under_four_clients_of_every_bomb_stays_within_the_printed_bound() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("usage.toml");
    std::fs::write(
        &config,
        format!(
            "[pipeline]\ndata_dir = {d:?}\n[spool]\npath = {s:?}\n[gateway]\nlisten = \"127.0.0.1:{port}\"\n\
             [[gateway.keys]]\nkey = \"k\"\n[exporters.out]\ntype = \"file\"\npath = {o:?}\n",
            d = dir.path().join("data").display().to_string(),
            s = dir.path().join("spool").display().to_string(),
            o = dir.path().join("out").display().to_string(),
        ),
    )
    .unwrap();
    let log = dir.path().join("gateway.log");
    let gateway = common::start_gateway_with_stderr(&config, port, std::fs::File::create(&log).unwrap().into());
    let pid = gateway.0.id();
    let Some(idle) = proc_kib(pid, "VmRSS:") else {
        eprintln!("no /proc here: skipped");
        return;
    };
    let printed = std::fs::read_to_string(&log).unwrap();
    let bound_mib: u64 = printed
        .split("memory bound: ")
        .nth(1)
        .and_then(|r| r.split(" MiB").next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no memory bound printed:\n{printed}"));

    let ts = "\"ts\":\"2026-12-01T00:00:00Z\"";
    let record_with_empty_attrs = {
        let mut record = Vec::new();
        put_field(
            &mut record,
            5,
            &[
                0x0a, 0x0b, b'r', b'e', b'l', b'a', b'y', b'_', b'u', b's', b'a', b'g', b'e',
            ][..2],
        );
        record.extend(std::iter::repeat_n([0x32u8, 0x00], 7_000_000).flatten());
        let mut scope = Vec::new();
        put_field(&mut scope, 2, &record);
        let mut resource = Vec::new();
        put_field(&mut resource, 2, &scope);
        let mut req = Vec::new();
        put_field(&mut req, 1, &resource);
        req
    };
    let bombs: Vec<(&str, &str, Vec<u8>, &[u16])> = vec![
        (
            "gzip bomb",
            "application/json",
            gzip(&[b"{\"events\":[", &b"0,".repeat(20 << 20)]),
            &[413],
        ),
        (
            "dense JSON event",
            "application/json",
            gzip(&[
                format!("{{\"events\":[{{\"kind\":\"relay_usage\",{ts},\"junk\":[").as_bytes(),
                &b"0,".repeat(7 << 20),
                b"0]}]}",
            ]),
            &[200],
        ),
        (
            "too many events",
            "application/json",
            gzip(&[b"{\"events\":[", &b"{},".repeat(200_000), b"{}]}"]),
            &[413],
        ),
        (
            "OTLP/JSON empty records",
            "application/json",
            gzip(&[
                b"{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":[",
                &b"{},".repeat(5 << 20),
                b"{}]}]}]}",
            ]),
            &[413],
        ),
        (
            "OTLP empty attributes",
            "application/x-protobuf",
            gzip(&[&record_with_empty_attrs]),
            &[200],
        ),
        (
            "OTLP empty resources",
            "application/x-protobuf",
            gzip(&[&[0x0a, 0x00].repeat(7_000_000)]),
            &[413],
        ),
    ];
    for (name, content_type, body, expect) in bombs {
        let body = Arc::new(body);
        let path = if name.starts_with("OTLP") {
            "/v1/logs"
        } else {
            "/v1/metrics"
        };
        let clients: Vec<_> = (0..4)
            .map(|_| {
                let body = body.clone();
                std::thread::spawn(move || post(port, path, content_type, &body))
            })
            .collect();
        for c in clients {
            let status = c.join().unwrap();
            assert!(
                expect.contains(&status),
                "{name}: answered {status}, expected {expect:?}"
            );
        }
    }
    let peak = proc_kib(pid, "VmHWM:").unwrap();
    let above_idle = peak.saturating_sub(idle);
    eprintln!(
        "idle {} MiB, peak {} MiB, {} MiB above idle, bound {bound_mib} MiB",
        idle >> 20,
        peak >> 20,
        above_idle >> 20
    );
    assert!(
        above_idle <= (bound_mib + 1) << 20,
        "peak {} MiB above idle exceeds the printed bound of {bound_mib} MiB",
        above_idle >> 20
    );
    // The gateway is still serving.
    assert_eq!(
        post(port, "/v1/metrics", "application/json", &gzip(&[b"{\"events\":[]}"])),
        200
    );
}
