//! The `otlp` exporter: each batch as OTLP/HTTP log requests, one per resource,
//! built by `usage-otlp-proto` (the mapping the gateway's receiver reads back) and
//! posted with our own async client, so every attempt is the pipeline's: counted,
//! retried with its backoff, classified by the one HTTP rule.

use crate::config::{logs_url, OtlpConfig, Protocol};
use prost::Message;
use std::time::{Duration, SystemTime};
use usage_core::export::http::{classify, retry_after};
use usage_core::export::redact_url;
use usage_core::{
    async_trait, Batch, ConfigError, Event, ExportError, Exporter, ExporterContext, ExporterDefaults, ExporterFactory,
    Resource,
};
use usage_otlp_proto::opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};

/// Sends each batch as OTLP log records.
pub struct OtlpExporter {
    http: reqwest::Client,
    url: String,
    protocol: Protocol,
    /// Extra request headers (their values may be secrets: never logged).
    headers: Vec<(String, String)>,
}

impl std::fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("url", &redact_url(&self.url))
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl OtlpExporter {
    /// An exporter from settings; `section` names the config section in errors.
    pub fn new(cfg: &OtlpConfig, section: &str) -> Result<Self, ConfigError> {
        let url = logs_url(cfg.endpoint.as_deref());
        let parsed = reqwest::Url::parse(&url)
            .map_err(|e| ConfigError::key(format!("{section}.endpoint"), format!("{url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ConfigError::key(
                format!("{section}.endpoint"),
                "must be http:// or https://",
            ));
        }
        let mut headers = Vec::new();
        for (k, v) in &cfg.headers {
            let value = v
                .expose()
                .map_err(|e| ConfigError::key(format!("{section}.headers.{k}"), e))?;
            headers.push((k.clone(), value));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout.unwrap_or(Duration::from_secs(10)))
            .danger_accept_invalid_certs(cfg.insecure)
            // A batch must not land somewhere nobody configured: a 3xx pauses instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ConfigError::key(section, format!("cannot build the HTTP client: {e}")))?;
        Ok(OtlpExporter {
            http,
            url,
            protocol: cfg.protocol,
            headers,
        })
    }

    /// Posts one request; what a failure means comes from the one HTTP rule.
    async fn post(&self, request: &ExportLogsServiceRequest) -> Result<(), ExportError> {
        let body = self.encode(request)?;
        self.send(records_in(request), body).await
    }

    /// The request's body in the configured protocol.
    fn encode(&self, request: &ExportLogsServiceRequest) -> Result<Vec<u8>, ExportError> {
        match self.protocol {
            Protocol::HttpProtobuf => Ok(request.encode_to_vec()),
            Protocol::HttpJson => {
                serde_json::to_vec(request).map_err(|e| ExportError::rejected(format!("OTLP/JSON encoding: {e}")))
            }
        }
    }

    /// Posts a request of `records` log records, already encoded as `body`.
    async fn send(&self, records: usize, body: Vec<u8>) -> Result<(), ExportError> {
        let content_type = match self.protocol {
            Protocol::HttpProtobuf => "application/x-protobuf",
            Protocol::HttpJson => "application/json",
        };
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", content_type)
            .body(body);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            // No answer at all (connection refused, reset, timeout): try again.
            Err(e) => {
                let why = usage_core::export::error_chain(&e.without_url());
                return Err(ExportError::retryable(format!(
                    "OTLP POST {}: {why}",
                    redact_url(&self.url)
                )));
            }
        };
        let status = resp.status();
        if status.is_success() {
            let body = read_prefix(resp, MAX_ANSWER_BYTES).await;
            return self.partial_success(&body, records);
        }
        let after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, SystemTime::now()));
        let body = read_prefix(resp, 2000).await;
        let text = String::from_utf8_lossy(&body);
        let message = format!(
            "OTLP POST {} -> {}: {}",
            redact_url(&self.url),
            status.as_u16(),
            text.trim()
        );
        Err(classify(status.as_u16(), after, message))
    }
}

impl OtlpExporter {
    /// A 2xx whose `partial_success` says the collector refused records: OTLP does
    /// not say which, so the whole request is refused and kept in the dead-letter
    /// directory (replaying it is safe: every record carries `event.id`), rather
    /// than counting refused records as delivered.
    fn partial_success(&self, body: &[u8], sent: usize) -> Result<(), ExportError> {
        let (rejected, message) = match self.protocol {
            Protocol::HttpProtobuf => match ExportLogsServiceResponse::decode(body)
                .ok()
                .and_then(|a| a.partial_success)
            {
                Some(p) => (p.rejected_log_records, p.error_message),
                None => return Ok(()),
            },
            Protocol::HttpJson => json_partial_success(body),
        };
        if rejected <= 0 {
            return Ok(());
        }
        Err(ExportError::rejected(format!(
            "OTLP POST {}: the collector refused {} of {sent} log records ({}); it does not say which, so all {sent} are kept",
            redact_url(&self.url),
            rejected,
            message.chars().take(500).collect::<String>()
        )))
    }
}

/// How many log records a request carries.
fn records_in(request: &ExportLogsServiceRequest) -> usize {
    request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum()
}

/// `partialSuccess` of an OTLP/JSON answer: its int64 count as a number or, as the
/// OTLP/JSON mapping writes it, a string; field names in either case style.
fn json_partial_success(body: &[u8]) -> (i64, String) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (0, String::new());
    };
    let field = |v: &serde_json::Value, camel: &str, snake: &str| v.get(camel).or_else(|| v.get(snake)).cloned();
    let Some(p) = field(&v, "partialSuccess", "partial_success") else {
        return (0, String::new());
    };
    let rejected = match field(&p, "rejectedLogRecords", "rejected_log_records") {
        Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    };
    let message = match field(&p, "errorMessage", "error_message") {
        Some(serde_json::Value::String(s)) => s,
        _ => String::new(),
    };
    (rejected, message)
}

/// The most of a success answer read: an `ExportLogsServiceResponse` is small.
const MAX_ANSWER_BYTES: usize = 64 << 10;

/// At most `limit` bytes of an answer's body, read as it arrives: a collector
/// cannot make us buffer more.
async fn read_prefix(mut resp: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < limit {
        match resp.chunk().await {
            Ok(Some(chunk)) => out.extend_from_slice(&chunk[..chunk.len().min(limit - out.len())]),
            _ => break,
        }
    }
    out
}

#[async_trait]
impl Exporter for OtlpExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        // One OTLP request per resource: events forwarded by a gateway keep their own.
        let mut groups: Vec<(Resource, Vec<&Event>)> = Vec::new();
        for e in batch.iter() {
            let res = e.resource().map_or_else(|| batch.resource().clone(), |r| (**r).clone());
            match groups.iter_mut().find(|(r, _)| *r == res) {
                Some((_, v)) => v.push(e),
                None => groups.push((res, vec![e])),
            }
        }
        let mut requests = Vec::with_capacity(groups.len());
        for (res, events) in &groups {
            let request = usage_otlp_proto::proto::request(res, events.iter().copied());
            requests.push((records_in(&request), self.encode(&request)?));
        }
        // Encoded: the next batch may be built while these are on the wire (log
        // records have no order across requests).
        batch.handed_off();
        for (records, body) in requests {
            self.send(records, body).await?;
        }
        Ok(())
    }

    async fn healthcheck(&self) -> Result<(), ExportError> {
        // An empty request checks that the collector answers and takes the headers.
        self.post(&ExportLogsServiceRequest::default()).await
    }
}

fn build(ctx: &ExporterContext) -> Result<Box<dyn Exporter>, ConfigError> {
    let section = format!("exporters.{}", ctx.section.name);
    let cfg: OtlpConfig = ctx.section.parse()?;
    Ok(Box::new(OtlpExporter::new(&cfg, &section)?))
}

/// The `otlp` exporter type.
pub static FACTORY: ExporterFactory = ExporterFactory {
    type_name: "otlp",
    description: "OTLP/HTTP log records (protobuf or JSON), one per event",
    build,
    defaults: ExporterDefaults {
        batch_max_events: Some(1_000),
        batch_max_bytes: Some(4 << 20),
        flush_interval: Some(Duration::from_secs(1)),
        // As many requests in flight as a collector's round trips need to keep a
        // steady flow; 1 keeps batches in order across failures.
        batches_in_flight: Some(4),
    },
    enabled_by_default: usage_core::registry::always_enabled,
    check: usage_core::registry::parses_as::<crate::config::OtlpConfig>,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_url_appends_the_signal_path_once() {
        assert_eq!(logs_url(Some("http://c:4318")), "http://c:4318/v1/logs");
        assert_eq!(logs_url(Some("http://c:4318/")), "http://c:4318/v1/logs");
        assert_eq!(logs_url(Some("http://c:4318/v1/logs")), "http://c:4318/v1/logs");
    }
}
