//! The `otlp` exporter: each batch as OTLP/HTTP log requests, one per resource,
//! built by `usage-otlp-proto` (the mapping the gateway's receiver reads back) and
//! posted with our own async client, so every attempt is the pipeline's: counted,
//! retried with its backoff, classified by the one HTTP rule.

use crate::config::{logs_url, OtlpConfig, Protocol};
use prost::Message;
use std::time::{Duration, SystemTime};
use usage_core::export::http::{classify, retry_after};
use usage_core::{
    async_trait, Batch, ConfigError, Event, ExportError, Exporter, ExporterContext, ExporterDefaults, ExporterFactory,
    Resource,
};
use usage_otlp_proto::opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;

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
            .field("url", &self.url)
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
        let (content_type, body) = match self.protocol {
            Protocol::HttpProtobuf => ("application/x-protobuf", request.encode_to_vec()),
            Protocol::HttpJson => (
                "application/json",
                serde_json::to_vec(request).map_err(|e| ExportError::rejected(format!("OTLP/JSON encoding: {e}")))?,
            ),
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
                let why = usage_core::export::error_chain(&e);
                return Err(ExportError::retryable(format!("OTLP POST {}: {why}", self.url)));
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, SystemTime::now()));
        let body = resp.bytes().await.unwrap_or_default();
        let text = String::from_utf8_lossy(&body[..body.len().min(2000)]);
        let message = format!("OTLP POST {} -> {}: {}", self.url, status.as_u16(), text.trim());
        Err(classify(status.as_u16(), after, message))
    }
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
        for (res, events) in &groups {
            self.post(&usage_otlp_proto::proto::request(res, events.iter().copied()))
                .await?;
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
    },
    enabled_by_default: usage_core::registry::always_enabled,
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
