//! `GET /v1/tap` on the admin listener: a live sample of the events the gateway
//! accepts, as NDJSON, for `usage tap` (like `vector tap`). Costs nothing while
//! nobody taps (one atomic load per request); while tapped, at most
//! [`SAMPLE_PER_KIND`] events of each kind per request are encoded.

use crate::state::Gateway;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use http_body::Frame;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use usage_core::{json, Event, Resource};

/// Events of one kind sampled from one request at most.
pub const SAMPLE_PER_KIND: usize = 16;
/// Sampled events waiting for slow tap clients; a client further behind is told
/// how many it skipped.
const BACKLOG: usize = 4096;
/// How long a tap runs unless `duration` says otherwise.
const DEFAULT_DURATION: Duration = Duration::from_secs(60);

/// One sampled event, encoded once for every client.
pub(crate) struct Tapped {
    kind: String,
    exporters: Vec<String>,
    line: Bytes,
}

/// The gateway's tap: a broadcast of sampled events.
pub(crate) struct Tap {
    tx: broadcast::Sender<Arc<Tapped>>,
}

impl Default for Tap {
    fn default() -> Self {
        Tap {
            tx: broadcast::channel(BACKLOG).0,
        }
    }
}

impl Tap {
    /// Samples `events` (about to be accepted for `key`) when someone is tapping;
    /// [`publish`](Tap::publish) them once they are accepted.
    pub(crate) fn sample(&self, g: &Gateway, key: &str, events: &[Event]) -> Vec<Tapped> {
        let mut sample = Vec::new();
        if self.tx.receiver_count() == 0 {
            return sample;
        }
        // Per kind: how many taken, and its exporters (looked up once per request).
        let mut kinds: HashMap<&str, (usize, Vec<String>)> = HashMap::new();
        for event in events {
            let (taken, exporters) = kinds.entry(event.kind()).or_insert_with(|| {
                let routed = g.pipeline.exporters_for(event.kind());
                (0, routed.into_iter().map(str::to_string).collect())
            });
            if *taken >= SAMPLE_PER_KIND {
                continue;
            }
            *taken += 1;
            // The event's own encoding goes into the line as it is, not re-parsed.
            let head = serde_json::json!({ "kind": event.kind(), "key": key, "exporters": exporters });
            let mut line = head.to_string().into_bytes();
            line.pop(); // the closing brace
            line.extend_from_slice(b",\"event\":");
            json::write_event(&mut line, event, &Resource::default());
            line.extend_from_slice(b"}\n");
            sample.push(Tapped {
                kind: event.kind().to_string(),
                exporters: exporters.clone(),
                line: Bytes::from(line),
            });
        }
        sample
    }

    /// Sends a request's sample to every tap client.
    pub(crate) fn publish(&self, sample: Vec<Tapped>) {
        for t in sample {
            // No receiver left: nothing to do.
            let _ = self.tx.send(Arc::new(t));
        }
    }
}

/// What a client asked for: `?kind=a&kind=b&exporter=x&limit=100&duration=30s`.
#[derive(Debug, Default, PartialEq)]
struct Filter {
    kinds: Vec<String>,
    exporters: Vec<String>,
    limit: Option<u64>,
    duration: Option<Duration>,
}

impl Filter {
    fn parse(query: Option<&str>) -> Result<Filter, String> {
        let mut f = Filter::default();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "kind" => f.kinds.push(value.to_string()),
                "exporter" => f.exporters.push(value.to_string()),
                "limit" => {
                    f.limit = Some(value.parse().map_err(|_| format!("limit: {value:?} is not a count"))?);
                }
                "duration" => {
                    let d = usage_core::config::units::parse_duration(value).map_err(|e| format!("duration: {e}"))?;
                    f.duration = Some(d);
                }
                other => {
                    return Err(format!(
                        "unknown parameter {other:?}: use kind, exporter, limit, duration"
                    ))
                }
            }
        }
        Ok(f)
    }

    fn wants(&self, t: &Tapped) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&t.kind))
            && (self.exporters.is_empty() || t.exporters.iter().any(|e| self.exporters.contains(e)))
    }
}

/// Streams sampled events until `limit`, `duration` (default 60s) or the client leaves.
pub(crate) async fn tap(State(g): State<Arc<Gateway>>, uri: Uri) -> Response {
    let filter = match Filter::parse(uri.query()) {
        Ok(f) => f,
        Err(e) => return crate::state::error(StatusCode::BAD_REQUEST, e),
    };
    let known = g.pipeline.exporter_names();
    if let Some(e) = filter.exporters.iter().find(|e| !known.contains(e)) {
        let message = format!("no exporter named {e:?}; the gateway has: {}", known.join(", "));
        return crate::state::error(StatusCode::NOT_FOUND, message);
    }
    let mut rx = g.tap.tx.subscribe();
    let (out, body) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let end = tokio::time::Instant::now() + filter.duration.unwrap_or(DEFAULT_DURATION);
        let mut sent = 0u64;
        while filter.limit.is_none_or(|l| sent < l) {
            let next = tokio::time::timeout_at(end, rx.recv()).await;
            let line = match next {
                Err(_) | Ok(Err(broadcast::error::RecvError::Closed)) => break,
                Ok(Err(broadcast::error::RecvError::Lagged(n))) => Bytes::from(format!("{{\"skipped\":{n}}}\n")),
                Ok(Ok(t)) if filter.wants(&t) => {
                    sent += 1;
                    t.line.clone()
                }
                Ok(Ok(_)) => continue,
            };
            if out.send(line).await.is_err() {
                break; // the client left
            }
        }
    });
    (
        [("content-type", "application/x-ndjson"), ("cache-control", "no-store")],
        Body::new(Lines(body)),
    )
        .into_response()
}

/// A response body fed line by line from the tap task.
struct Lines(mpsc::Receiver<Bytes>);

impl http_body::Body for Lines {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|line| line.map(|l| Ok(Frame::data(l))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_refuse_what_they_do_not_know() {
        let f = Filter::parse(Some(
            "kind=relay_usage&kind=optimizer_qos&exporter=kafka&limit=5&duration=2s",
        ))
        .unwrap();
        assert_eq!(f.kinds, ["relay_usage", "optimizer_qos"]);
        assert_eq!(f.exporters, ["kafka"]);
        assert_eq!(f.limit, Some(5));
        assert_eq!(f.duration, Some(Duration::from_secs(2)));
        assert_eq!(Filter::parse(None).unwrap(), Filter::default());
        assert!(Filter::parse(Some("limit=many")).unwrap_err().contains("limit"));
        assert!(Filter::parse(Some("knd=x")).unwrap_err().contains("\"knd\""));
    }
}
