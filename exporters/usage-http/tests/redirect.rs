//! Review M9: a redirect is never followed (a batch must not land somewhere nobody
//! configured); the exporter pauses with a message that says what to fix.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use usage_core::{Batch, Event, ExportError, Exporter, ExporterSection, RelayUsage, Resource};
use usage_http::{HttpConfig, HttpExporter};

#[tokio::test]
async fn a_redirect_pauses_and_is_not_followed() {
    // The redirect target counts what reaches it: nothing may.
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let target_url = format!("http://{}/elsewhere", target.local_addr().unwrap());
    let reached = Arc::new(AtomicUsize::new(0));
    let seen = reached.clone();
    std::thread::spawn(move || {
        for _ in target.incoming().flatten() {
            seen.fetch_add(1, SeqCst);
        }
    });
    let api = TcpListener::bind("127.0.0.1:0").unwrap();
    let api_url = format!("http://{}/v1/metrics", api.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut s in api.incoming().flatten() {
            let mut buf = vec![0u8; 1 << 16];
            let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(300)));
            let _ = s.read(&mut buf);
            let resp = format!(
                "HTTP/1.1 308 Permanent Redirect\r\nlocation: {target_url}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            let _ = s.write_all(resp.as_bytes());
        }
    });
    let cfg: HttpConfig = ExporterSection::new("h", "http")
        .set("url", api_url.as_str())
        .set("key", "k")
        .parse()
        .unwrap();
    let exporter = HttpExporter::new(&cfg, "exporters.h").unwrap();
    let batch = Batch::from_events(vec![Event::new(RelayUsage::default())], Arc::new(Resource::default()));
    let e = exporter.export(&batch).await.unwrap_err();
    assert!(matches!(e, ExportError::Paused { .. }), "{e:?}");
    assert!(
        e.to_string().contains("308") && e.to_string().contains("redirect"),
        "{e}"
    );
    assert_eq!(reached.load(SeqCst), 0, "the redirect was followed");
}
