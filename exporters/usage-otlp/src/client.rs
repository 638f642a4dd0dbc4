//! The HTTP client handed to the OTLP exporter: async reqwest on the caller's
//! runtime (the pipeline's), remembering each answer's status and Retry-After so a
//! failure can be classified (pause, split, retry after).

use bytes::Bytes;
use http::{Request, Response};
use opentelemetry_http::{HttpClient, HttpError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the last request got back.
#[derive(Debug, Clone, Default)]
pub(crate) struct LastAnswer {
    pub(crate) status: Option<u16>,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) body: String,
    pub(crate) transport_error: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Client {
    inner: reqwest::Client,
    pub(crate) last: Arc<Mutex<LastAnswer>>,
}

impl Client {
    pub(crate) fn new(inner: reqwest::Client) -> Self {
        Client {
            inner,
            last: Arc::default(),
        }
    }

    pub(crate) fn take_last(&self) -> LastAnswer {
        std::mem::take(&mut *self.last.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[async_trait::async_trait]
impl HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut req = self.inner.request(parts.method, parts.uri.to_string()).body(body);
        for (k, v) in &parts.headers {
            req = req.header(k, v);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                self.last.lock().unwrap_or_else(|p| p.into_inner()).transport_error = Some(e.to_string());
                return Err(Box::new(e));
            }
        };
        let status = resp.status();
        let after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| usage_core::export::http::retry_after(v, std::time::SystemTime::now()));
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| Box::new(e) as HttpError)?;
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = LastAnswer {
            status: Some(status.as_u16()),
            retry_after: after,
            body: String::from_utf8_lossy(&body[..body.len().min(2000)]).into_owned(),
            transport_error: None,
        };
        let mut out = Response::builder().status(status.as_u16());
        for (k, v) in &headers {
            out = out.header(k, v);
        }
        out.body(body).map_err(|e| Box::new(e) as HttpError)
    }
}
