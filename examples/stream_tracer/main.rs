//! `stream_tracer`: stream lifecycle `network_event`s (started, quality changes,
//! stopped), sent either in-process (local mode: straight to the configured
//! exporters) or through the `http` exporter to a `usage gateway` (remote mode).
//! The same events arrive either way; the test proves it.
//!
//! ```text
//! cargo run -p usage-examples --example stream_tracer -- local
//! usage gateway --config gateway.toml &        # see docs/operations.md
//! USAGE_GATEWAY_KEY=... cargo run -p usage-examples --example stream_tracer -- remote http://127.0.0.1:8080
//! ```

use std::time::Duration;
use usage_core::{Event, NetworkEvent, Pipeline, Text, UsageConfig, UsageSink};

/// Where the tracer's events go.
pub enum Mode {
    /// The exporters in `usage.toml` (default: `file` under `./usage-data`).
    Local,
    /// A `usage gateway` at this base URL, with this key.
    Remote { gateway: String, key: String },
}

impl Mode {
    fn pipeline(&self) -> Result<Pipeline, Box<dyn std::error::Error>> {
        Ok(match self {
            Mode::Local => Pipeline::from_config(&UsageConfig::load()?)?,
            Mode::Remote { gateway, key } => Pipeline::from_config(&remote_config(gateway, key, "./usage-data")?)?,
        })
    }
}

/// The `http` exporter pointed at a gateway; only the key travels, never in logs.
fn remote_config(gateway: &str, key: &str, data_dir: &str) -> Result<UsageConfig, usage_core::ConfigError> {
    UsageConfig::from_toml(&format!(
        "[pipeline]\ndata_dir = {data_dir:?}\n\
         [exporters.gateway]\ntype = \"http\"\nurl = \"{}/v1/metrics\"\nkey = {key:?}\nflush_interval = \"50ms\"\n",
        gateway.trim_end_matches('/')
    ))
}

/// Records one stream's lifecycle.
pub struct StreamTracer {
    sink: UsageSink,
    pipeline: Text,
}

impl StreamTracer {
    pub fn new(sink: UsageSink, pipeline: &str) -> Self {
        StreamTracer {
            sink,
            pipeline: pipeline.into(),
        }
    }

    /// Builds and emits one lifecycle event; returns it (the caller may keep a copy).
    pub fn trace(&self, stream_id: &str, event_type: &str, attributes: &[(&str, &str)]) -> Event {
        // Maps travel in key order (JSON objects, ClickHouse maps): build them that way.
        let mut attributes: Vec<(Text, Text)> = attributes.iter().map(|(k, v)| (Text::new(k), Text::new(v))).collect();
        attributes.sort();
        let event = Event::new(NetworkEvent {
            event_type: event_type.into(),
            stream_id: stream_id.into(),
            pipeline: self.pipeline.clone(),
            attributes,
            data: None,
        });
        self.sink.emit(event.clone());
        event
    }
}

/// A short session: two streams start, one changes bitrate, both stop.
fn session(tracer: &StreamTracer) -> Vec<Event> {
    vec![
        tracer.trace("cam-1", "stream_started", &[("codec", "h264"), ("bitrate", "4000")]),
        tracer.trace("cam-2", "stream_started", &[("codec", "av1")]),
        tracer.trace(
            "cam-1",
            "bitrate_changed",
            &[("bitrate", "2500"), ("reason", "congestion")],
        ),
        tracer.trace("cam-2", "stream_stopped", &[("reason", "client_closed")]),
        tracer.trace("cam-1", "stream_stopped", &[("reason", "eof")]),
    ]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    usage::link_exporters();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = match args.first().map(String::as_str) {
        None | Some("local") => Mode::Local,
        Some("remote") => Mode::Remote {
            gateway: args.get(1).cloned().unwrap_or_else(|| "http://127.0.0.1:8080".into()),
            key: std::env::var("USAGE_GATEWAY_KEY").map_err(|_| "remote mode needs USAGE_GATEWAY_KEY")?,
        },
        Some(other) => return Err(format!("unknown mode `{other}`: use `local` or `remote [URL]`").into()),
    };
    let pipeline = mode.pipeline()?;
    let sent = session(&StreamTracer::new(pipeline.sink(), "ingest"));
    let report = pipeline.shutdown(Duration::from_secs(10)).await?;
    println!("traced {} events: {report:?}", sent.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn stored(dir: &Path) -> Vec<Event> {
        let mut out = Vec::new();
        usage_file::read::scan(dir, &Default::default(), |e| out.push(e)).unwrap();
        out.sort_by_key(|e| e.id());
        out
    }

    fn file_config(dir: &Path) -> UsageConfig {
        UsageConfig::from_toml(&format!(
            "[pipeline]\ndata_dir = {:?}\n[exporters.local]\ntype = \"file\"\npath = {:?}\n",
            dir.join("data").display().to_string(),
            dir.join("out").display().to_string()
        ))
        .unwrap()
    }

    /// Without the resource (the gateway keeps the sender's), for comparing.
    fn bare(events: &[Event]) -> Vec<Event> {
        let none = std::sync::Arc::new(usage_core::Resource::default());
        events.iter().map(|e| e.clone().with_resource(none.clone())).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_and_remote_modes_deliver_the_same_events() {
        usage_core::link_exporters!(usage_file, usage_http);
        let dir = tempfile::tempdir().unwrap();

        // Local: straight to the file exporter.
        let local = Pipeline::from_config(&file_config(&dir.path().join("local"))).unwrap();
        let sent = session(&StreamTracer::new(local.sink(), "ingest"));
        local.shutdown(Duration::from_secs(10)).await.unwrap();

        // Remote: http exporter -> a real gateway (in-process here) -> its file exporter.
        let gw_dir = dir.path().join("gateway");
        let gw_toml = format!(
            "[pipeline]\ndata_dir = {:?}\n[exporters.local]\ntype = \"file\"\npath = {:?}\n\
             [[gateway.keys]]\nkey = \"tracer-key\"\n",
            gw_dir.join("data").display().to_string(),
            gw_dir.join("out").display().to_string()
        );
        let gateway = usage_gateway::Gateway::new(&UsageConfig::from_toml(&gw_toml).unwrap()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = usage_gateway::router(gateway.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let remote_dir = dir.path().join("remote");
        let remote =
            Pipeline::from_config(&remote_config(&url, "tracer-key", &remote_dir.display().to_string()).unwrap())
                .unwrap();
        for e in &sent {
            remote.sink().emit(e.clone()); // the very same events, ids included
        }
        let report = remote.shutdown(Duration::from_secs(10)).await.unwrap();
        assert_eq!(report.exporter("gateway").unwrap().delivered, sent.len() as u64);
        gateway.pipeline().flush(Duration::from_secs(10)).await.unwrap();

        let mut want = sent.clone();
        want.sort_by_key(|e| e.id());
        let (local_got, remote_got) = (stored(&dir.path().join("local/out")), stored(&gw_dir.join("out")));
        assert_eq!(bare(&local_got), bare(&want));
        assert_eq!(bare(&remote_got), bare(&want), "the gateway gives back the same events");
    }

    #[test]
    fn remote_config_never_shows_the_key() {
        usage_core::link_exporters!(usage_http);
        let cfg = remote_config("http://gw:8080/", "s3cret-key", "/tmp/x").unwrap();
        assert!(!format!("{cfg:?}").contains("s3cret-key"));
    }
}
