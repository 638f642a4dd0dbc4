//! The `otlp` exporter.

use crate::client::Client;
use crate::config::{logs_url, OtlpConfig, Protocol};
use crate::record::fill;
use opentelemetry::logs::{Logger, LoggerProvider};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::logs::{LogBatch, LogExporter as _, SdkLogRecord, SdkLogger, SdkLoggerProvider};
use std::collections::HashMap;
use std::time::Duration;
use usage_core::{
    async_trait, Batch, ConfigError, ExportError, Exporter, ExporterContext, ExporterDefaults, ExporterFactory,
    Resource,
};

/// Sends each batch as OTLP log records through `opentelemetry-otlp`'s exporter.
pub struct OtlpExporter {
    exporter: tokio::sync::Mutex<opentelemetry_otlp::LogExporter>,
    client: Client,
    /// Only creates records; it has no processor, so nothing is queued or dropped here.
    logger: SdkLogger,
    _provider: SdkLoggerProvider,
    scope: InstrumentationScope,
    url: String,
}

impl std::fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn sdk_resource(r: &Resource) -> opentelemetry_sdk::Resource {
    opentelemetry_sdk::Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", r.service_name.to_string()),
            KeyValue::new("service.instance.id", r.service_instance_id.to_string()),
        ])
        .build()
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
        let mut headers = HashMap::new();
        for (k, v) in &cfg.headers {
            headers.insert(
                k.clone(),
                v.expose()
                    .map_err(|e| ConfigError::key(format!("{section}.headers.{k}"), e))?,
            );
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout.unwrap_or(Duration::from_secs(10)))
            .danger_accept_invalid_certs(cfg.insecure)
            .build()
            .map_err(|e| ConfigError::key(section, format!("cannot build the HTTP client: {e}")))?;
        let client = Client::new(http);
        let protocol = match cfg.protocol {
            Protocol::HttpProtobuf => opentelemetry_otlp::Protocol::HttpBinary,
            Protocol::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
        };
        let exporter = opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_http_client(client.clone())
            .with_endpoint(url.clone())
            .with_protocol(protocol)
            .with_headers(headers)
            .with_timeout(cfg.timeout.unwrap_or(Duration::from_secs(10)))
            // The pipeline retries (counted, with its backoff and Retry-After floor) and
            // splits on 413; retries hidden inside the SDK would be neither.
            .with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled())
            .with_max_request_body_size(usize::MAX)
            .build()
            .map_err(|e| ConfigError::key(section, format!("cannot build the OTLP exporter: {e}")))?;
        let provider = SdkLoggerProvider::builder().build();
        let logger = provider.logger("usage");
        Ok(OtlpExporter {
            exporter: tokio::sync::Mutex::new(exporter),
            client,
            logger,
            _provider: provider,
            scope: InstrumentationScope::builder("usage")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            url,
        })
    }

    /// What a failed export means, from the HTTP answer the client saw.
    fn classify(&self, e: impl std::fmt::Display) -> ExportError {
        let last = self.client.take_last();
        let message = match (last.status, &last.transport_error) {
            (Some(s), _) => format!("OTLP POST {} -> {s}: {}", self.url, last.body.trim()),
            (None, Some(t)) => format!("OTLP POST {}: {t}", self.url),
            (None, None) => format!("OTLP POST {}: {e}", self.url),
        };
        match last.status {
            Some(status) => usage_core::export::http::classify(status, last.retry_after, message),
            // No answer at all (connection refused, reset, timeout): try again.
            None => ExportError::retryable(message),
        }
    }
}

#[async_trait]
impl Exporter for OtlpExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        // One OTLP request per resource: events forwarded by a gateway keep their own.
        let mut groups: Vec<(Resource, Vec<SdkLogRecord>)> = Vec::new();
        for e in batch.iter() {
            let res = e.resource().map_or_else(|| batch.resource().clone(), |r| (**r).clone());
            let mut record = self.logger.create_log_record();
            fill(&mut record, e);
            match groups.iter_mut().find(|(r, _)| *r == res) {
                Some((_, v)) => v.push(record),
                None => groups.push((res, vec![record])),
            }
        }
        let mut exporter = self.exporter.lock().await;
        for (res, records) in &groups {
            exporter.set_resource(&sdk_resource(res));
            let pairs: Vec<(&SdkLogRecord, &InstrumentationScope)> = records.iter().map(|r| (r, &self.scope)).collect();
            self.client.take_last();
            if let Err(e) = exporter.export(LogBatch::new(&pairs)).await {
                return Err(self.classify(e));
            }
        }
        Ok(())
    }

    async fn healthcheck(&self) -> Result<(), ExportError> {
        // An empty request checks that the collector answers.
        let mut exporter = self.exporter.lock().await;
        exporter.set_resource(&sdk_resource(&Resource::default()));
        self.client.take_last();
        match exporter.export(LogBatch::new(&[])).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.classify(e)),
        }
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
