//! The `http` exporter.

use crate::config::HttpConfig;
use flate2::write::GzEncoder;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use usage_core::export::redact_url;
use usage_core::{
    async_trait, json, Batch, ConfigError, ExportError, Exporter, ExporterContext, ExporterDefaults, ExporterFactory,
    ExporterSection, Secret,
};

/// Posts batches to a metrics API.
pub struct HttpExporter {
    client: reqwest::Client,
    url: String,
    key: Option<Secret>,
    gzip: bool,
    /// The key that was refused, so a probe can tell whether it has changed.
    refused_key: Mutex<Option<String>>,
}

impl HttpExporter {
    /// An exporter from settings; `section` names the config section in errors.
    pub fn new(cfg: &HttpConfig, section: &str) -> Result<Self, ConfigError> {
        let url = reqwest::Url::parse(&cfg.url)
            .map_err(|e| ConfigError::key(format!("{section}.url"), format!("{:?}: {e}", cfg.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::key(
                format!("{section}.url"),
                "must be http:// or https://",
            ));
        }
        if let Some(k) = &cfg.key {
            k.expose().map_err(|e| ConfigError::key(format!("{section}.key"), e))?;
        }
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout.unwrap_or(Duration::from_secs(10)))
            .user_agent(concat!("usage-http/", env!("CARGO_PKG_VERSION")))
            // A batch must not land somewhere nobody configured: a 3xx pauses instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ConfigError::key(section, format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpExporter {
            client,
            url: cfg.url.clone(),
            key: cfg.key.clone(),
            gzip: cfg.gzip,
            refused_key: Mutex::new(None),
        })
    }

    fn current_key(&self) -> Result<Option<String>, ExportError> {
        match &self.key {
            None => Ok(None),
            // A key that cannot be read (env var unset, file gone) is a credentials problem.
            Some(s) => s
                .expose()
                .map(Some)
                .map_err(|e| ExportError::paused(format!("api key: {e}"))),
        }
    }

    fn body(&self, batch: &Batch) -> Result<Vec<u8>, ExportError> {
        let mut raw = Vec::with_capacity(batch.len() * 400 + 16);
        raw.extend_from_slice(b"{\"events\":[");
        for (i, e) in batch.iter().enumerate() {
            if i > 0 {
                raw.push(b',');
            }
            json::write_event(&mut raw, e, batch.resource());
        }
        raw.extend_from_slice(b"]}");
        if !self.gzip {
            return Ok(raw);
        }
        let mut gz = GzEncoder::new(Vec::with_capacity(raw.len() / 6), flate2::Compression::fast());
        gz.write_all(&raw)
            .and_then(|_| gz.finish())
            .map_err(|e| ExportError::retryable(format!("gzip: {e}")))
    }

    async fn post(&self, body: Vec<u8>, idempotency_key: &str) -> Result<(), ExportError> {
        let key = self.current_key()?;
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("idempotency-key", idempotency_key)
            .body(body);
        if self.gzip {
            req = req.header("content-encoding", "gzip");
        }
        if let Some(k) = &key {
            req = req.bearer_auth(k);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let why = usage_core::export::error_chain(&e.without_url());
                return Err(ExportError::retryable(format!("POST {}: {why}", redact_url(&self.url))));
            }
        };
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            // A gateway that refused single events says so in a 200 body.
            let text = resp.text().await.unwrap_or_default();
            return match refused_events(&text) {
                Some((indices, message)) => Err(ExportError::PartiallyRejected { indices, message }),
                None => Ok(()),
            };
        }
        let after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| usage_core::export::http::retry_after(v, SystemTime::now()));
        let text = resp.text().await.unwrap_or_default();
        let text: String = text.chars().take(2000).collect();
        let message = format!("POST {} -> {status}: {}", redact_url(&self.url), text.trim());
        let error = usage_core::export::http::classify(status, after, message);
        if matches!(error, ExportError::Paused { .. }) {
            // Remember which key was refused, so a probe can tell whether it changed.
            *self.refused_key.lock().unwrap_or_else(|p| p.into_inner()) = key;
        }
        Err(error)
    }
}

/// `{"rejected":[{"index","reason","error"}]}` in a success answer: the positions
/// refused and a message naming the first few; `None` when nothing was refused.
fn refused_events(body: &str) -> Option<(Vec<usize>, String)> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let list = v.get("rejected")?.as_array()?;
    let indices: Vec<usize> = list
        .iter()
        .filter_map(|r| r.get("index")?.as_u64().map(|i| i as usize))
        .collect();
    if indices.is_empty() {
        return None;
    }
    let errors: Vec<&str> = list.iter().take(3).filter_map(|r| r.get("error")?.as_str()).collect();
    Some((indices, errors.join("; ")))
}

#[async_trait]
impl Exporter for HttpExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let body = self.body(batch)?;
        // Encoded: with `batches_in_flight` above 1 the next batch may be posted
        // while this one waits for its answer (a metrics API has no order to keep).
        batch.handed_off();
        self.post(body, &batch.id().to_string()).await
    }

    async fn healthcheck(&self) -> Result<(), ExportError> {
        // An empty batch checks reachability and the key without sending data.
        self.post(
            if self.gzip {
                self.body(&Batch::from_events(Vec::new(), Default::default()))?
            } else {
                b"{\"events\":[]}".to_vec()
            },
            "healthcheck",
        )
        .await
    }

    async fn probe(&self) -> Result<(), ExportError> {
        // Paused on a refused key: a rotated key resumes at once; otherwise ask the server.
        let refused = self.refused_key.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let (Ok(now), Some(old)) = (self.current_key(), refused) {
            if now.is_some() && now != Some(old) {
                tracing::warn!(url = %redact_url(&self.url), "api key changed, resuming");
                return Ok(());
            }
        }
        self.healthcheck().await
    }
}

fn build(ctx: &ExporterContext) -> Result<Box<dyn Exporter>, ConfigError> {
    let section = format!("exporters.{}", ctx.section.name);
    let cfg: HttpConfig = ctx.section.parse()?;
    Ok(Box::new(HttpExporter::new(&cfg, &section)?))
}

/// Enabled by default only when a key is configured.
fn has_key(section: &ExporterSection) -> bool {
    section.settings.contains_key("key")
}

/// The `http` exporter type.
pub static FACTORY: ExporterFactory = ExporterFactory {
    type_name: "http",
    description: "gzip JSON batches to a metrics API (Bearer key, Idempotency-Key, Retry-After, pause on 401)",
    build,
    defaults: ExporterDefaults {
        batch_max_events: Some(1_000),
        batch_max_bytes: Some(4 << 20),
        flush_interval: Some(Duration::from_secs(1)),
        // One at a time unless the operator raises it: how many concurrent posts a
        // metrics API takes is theirs to say, and one keeps the batches' order.
        batches_in_flight: Some(1),
    },
    enabled_by_default: has_key,
    check: usage_core::registry::parses_as::<crate::config::HttpConfig>,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_body_with_refused_events_names_them() {
        assert_eq!(refused_events(r#"{"accepted":3,"rejected":[]}"#), None);
        assert_eq!(refused_events("not json"), None);
        assert_eq!(refused_events(r#"{"accepted":3}"#), None);
        let (indices, message) = refused_events(
            r#"{"accepted":1,"rejected":[{"index":0,"reason":"wrong_type","error":"events[0]: a"},{"index":2,"reason":"x","error":"events[2]: b"}]}"#,
        )
        .unwrap();
        assert_eq!(indices, [0, 2]);
        assert_eq!(message, "events[0]: a; events[2]: b");
    }
}
