//! The S3 exporter: one object per (kind, event hour) per batch, named after the
//! batch id and written once (`If-None-Match: *`), so a retried or replayed upload
//! is a no-op instead of a duplicate or an overwrite.

use crate::config::S3Config;
use crate::write_once::{key_exists, stored_batch, taken, BATCH_META};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use std::time::Duration;
use usage_core::{
    async_trait, Batch, ConfigError, ExportError, Exporter, ExporterContext, ExporterDefaults, ExporterFactory,
};
use usage_file::encode::encode_parts;
use usage_file::layout::part_file_name;
use usage_file::Compression;

/// Parts of a multipart upload (S3's minimum is 5 MiB except the last).
const MULTIPART_CHUNK: usize = 8 << 20;

/// Uploads batches to S3 (or any S3-compatible store) in the hive layout
/// `<prefix>/year=YYYY/month=MM/day=DD/hour=HH/part-<batch id>.ndjson.gz`.
pub struct S3Exporter {
    bucket: String,
    prefix: String,
    region: Option<String>,
    endpoint: Option<String>,
    path_style: bool,
    static_keys: Option<(String, String)>,
    compression: Compression,
    multipart_threshold: usize,
    conditional_writes: bool,
    client: tokio::sync::OnceCell<Client>,
}

impl S3Exporter {
    /// An exporter from settings; `prefix` names the config section in errors.
    pub fn new(cfg: &S3Config, section: &str) -> Result<Self, ConfigError> {
        if cfg.bucket.trim().is_empty() {
            return Err(ConfigError::key(format!("{section}.bucket"), "must not be empty"));
        }
        let static_keys = match (&cfg.access_key_id, &cfg.secret_access_key) {
            (Some(a), Some(s)) => Some((
                a.expose()
                    .map_err(|e| ConfigError::key(format!("{section}.access_key_id"), e))?,
                s.expose()
                    .map_err(|e| ConfigError::key(format!("{section}.secret_access_key"), e))?,
            )),
            (None, None) => None,
            _ => {
                return Err(ConfigError::key(
                    section,
                    "set both access_key_id and secret_access_key, or neither (to use the AWS credential chain)",
                ))
            }
        };
        Ok(S3Exporter {
            bucket: cfg.bucket.clone(),
            prefix: cfg.prefix.trim_matches('/').to_string(),
            region: cfg.region.clone(),
            endpoint: cfg.endpoint.clone(),
            path_style: cfg.path_style.unwrap_or(cfg.endpoint.is_some()),
            static_keys,
            compression: cfg.compression,
            multipart_threshold: cfg.multipart_threshold.unwrap_or(16 << 20).max(5 << 20),
            conditional_writes: cfg.conditional_writes,
            client: tokio::sync::OnceCell::new(),
        })
    }

    /// The client, built on first use (loading the AWS credential chain is async).
    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let mut b = match &self.static_keys {
                    Some((ak, sk)) => aws_sdk_s3::Config::builder()
                        .behavior_version(BehaviorVersion::latest())
                        .credentials_provider(Credentials::new(ak, sk, None, None, "usage-config"))
                        .region(Region::new(self.region.clone().unwrap_or_else(|| "us-east-1".into()))),
                    None => {
                        let mut loader = aws_config::defaults(BehaviorVersion::latest());
                        if let Some(r) = &self.region {
                            loader = loader.region(Region::new(r.clone()));
                        }
                        let sdk = loader.load().await;
                        let mut b = aws_sdk_s3::config::Builder::from(&sdk);
                        if sdk.region().is_none() {
                            b = b.region(Region::new("us-east-1"));
                        }
                        b
                    }
                };
                if let Some(ep) = &self.endpoint {
                    b = b.endpoint_url(ep);
                }
                // Checksums only when required: works with AWS and with S3-compatible
                // stores that reject aws-chunked uploads.
                // The pipeline retries with backoff and Retry-After; the SDK must not too.
                b = b
                    .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
                    .force_path_style(self.path_style)
                    .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                    .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
                Client::from_conf(b.build())
            })
            .await
    }

    /// The object key of a part.
    pub fn key(&self, kind: &str, hive: &str, batch_id: &str) -> String {
        let prefix = self.prefix.replace("{kind}", kind);
        let name = part_file_name(batch_id, self.compression);
        if prefix.is_empty() {
            format!("{hive}/{name}")
        } else {
            format!("{prefix}/{hive}/{name}")
        }
    }

    /// Writes `body` at `key` once: a key already holding this batch's object is a
    /// replay (done); one holding anything else is not overwritten.
    async fn put(&self, key: &str, body: Vec<u8>, batch: &str) -> Result<(), ExportError> {
        let client = self.client().await;
        if body.len() <= self.multipart_threshold {
            let mut put = client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type("application/x-ndjson")
                .metadata(BATCH_META, batch)
                .body(ByteStream::from(body));
            if self.conditional_writes {
                put = put.if_none_match("*");
            }
            return match put.send().await {
                Ok(_) => Ok(()),
                Err(e) if self.conditional_writes && key_exists(&e) => self.check_taken(client, key, batch).await,
                Err(e) => Err(classify(e, &self.bucket, key)),
            };
        }
        // Large parts are not uploaded again just to be refused at completion.
        if self.conditional_writes {
            if let Some(stored) = stored_batch(client, &self.bucket, key).await? {
                return taken(&self.bucket, key, &stored, batch);
            }
        }
        let upload = client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/x-ndjson")
            .metadata(BATCH_META, batch)
            .send()
            .await
            .map_err(|e| classify(e, &self.bucket, key))?;
        let Some(upload_id) = upload.upload_id() else {
            return Err(ExportError::retryable(
                "s3: CreateMultipartUpload returned no upload id",
            ));
        };
        let mut parts = Vec::new();
        for (n, chunk) in body.chunks(MULTIPART_CHUNK).enumerate() {
            let number = n as i32 + 1;
            let r = client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(chunk.to_vec()))
                .send()
                .await;
            match r {
                Ok(out) => parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(out.e_tag().map(String::from))
                        .build(),
                ),
                Err(e) => {
                    self.abort(client, key, upload_id).await;
                    return Err(classify(e, &self.bucket, key));
                }
            }
        }
        let mut complete = client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build());
        if self.conditional_writes {
            complete = complete.if_none_match("*");
        }
        match complete.send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                // Its parts would be billed storage nobody reads (review L6); the
                // retry uploads them again.
                self.abort(client, key, upload_id).await;
                if self.conditional_writes && key_exists(&e) {
                    return self.check_taken(client, key, batch).await;
                }
                Err(classify(e, &self.bucket, key))
            }
        }
    }

    /// A conditional write was refused: whose object holds the key?
    async fn check_taken(&self, client: &Client, key: &str, batch: &str) -> Result<(), ExportError> {
        match stored_batch(client, &self.bucket, key).await? {
            Some(stored) => taken(&self.bucket, key, &stored, batch),
            // Refused, yet gone: retry the write.
            None => Err(ExportError::retryable(format!(
                "s3 s3://{}/{key}: a conditional write was refused but the key is empty",
                self.bucket
            ))),
        }
    }

    /// Aborts a multipart upload; a failure to abort is logged (a bucket lifecycle
    /// rule for incomplete uploads is the backstop, docs/s3.md).
    async fn abort(&self, client: &aws_sdk_s3::Client, key: &str, upload_id: &str) {
        let aborted = client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            tracing::warn!(bucket = %self.bucket, key, error = %usage_core::export::error_chain(&e), "could not abort a multipart upload; its parts stay until the bucket's lifecycle rule removes them");
        }
    }
}

/// What an S3 failure means for the pipeline.
fn classify<E>(err: SdkError<E, HttpResponse>, bucket: &str, key: &str) -> ExportError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = match &err {
        SdkError::ServiceError(s) => Some(s.raw().status().as_u16()),
        SdkError::ResponseError(r) => Some(r.raw().status().as_u16()),
        _ => None,
    };
    let code = err.code().unwrap_or("").to_string();
    // What the service said when it answered; otherwise every layer of the failure
    // (the SDK's own text is often just "dispatch failure").
    let detail = match err.message() {
        Some(m) => m.to_string(),
        None => usage_core::export::error_chain(&err),
    };
    let message = [
        format!("s3 s3://{bucket}/{key}"),
        code.clone(),
        status.map(|s| format!("HTTP {s}")).unwrap_or_default(),
        detail,
    ]
    .into_iter()
    .filter(|p| !p.is_empty())
    .collect::<Vec<_>>()
    .join(": ");
    match (code.as_str(), status) {
        // Transient, though some come as a 4xx: a clock off for a moment, a
        // conflicting operation on the same key.
        (
            "SlowDown"
            | "Throttling"
            | "RequestTimeout"
            | "InternalError"
            | "ServiceUnavailable"
            | "RequestTimeTooSkewed"
            | "OperationAborted"
            // Another conditional write to the key is in flight.
            | "ConditionalRequestConflict",
            _,
        ) => ExportError::retryable(message),
        // A store without conditional writes: retrying cannot help.
        ("NotImplemented", _) | (_, Some(501)) => ExportError::paused(format!(
            "{message} (if the store does not support If-None-Match, set conditional_writes = false)"
        )),
        ("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken" | "InvalidToken", _)
        | (_, Some(401 | 403)) => ExportError::paused(message),
        // The operator must create the bucket: keep the data and probe until it exists.
        ("NoSuchBucket", _) => ExportError::paused(message),
        ("EntityTooLarge", _) | (_, Some(413)) => ExportError::too_large(message),
        (_, Some(s)) if s >= 500 || s == 429 || s == 408 => ExportError::retryable(message),
        (_, Some(s)) if (400..500).contains(&s) => ExportError::rejected(message),
        // No response (connection refused, timeout, DNS): transient.
        _ => ExportError::retryable(message),
    }
}

#[async_trait]
impl Exporter for S3Exporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let (owned, compression) = (batch.clone(), self.compression);
        let level = if compression == Compression::Gzip { 6 } else { 3 };
        let parts = tokio::task::spawn_blocking(move || encode_parts(&owned, compression, level))
            .await
            .map_err(|e| ExportError::retryable(format!("s3 encode task failed: {e}")))?
            .map_err(|e| ExportError::retryable(format!("s3 encode: {e}")))?;
        let id = batch.id().to_string();
        // A part the store refuses (its key holds another object) costs only its own
        // events: the other parts are still written, and only its events are refused.
        let (mut refused, mut reasons) = (Vec::new(), Vec::new());
        for part in parts {
            let key = self.key(&part.partition.kind, &part.partition.hive_path(), &id);
            match self.put(&key, part.bytes, &id).await {
                Ok(()) => {}
                Err(ExportError::Rejected { message }) => {
                    refused.extend(part.indices);
                    reasons.push(message);
                }
                Err(other) => return Err(other),
            }
        }
        if refused.is_empty() {
            return Ok(());
        }
        let message = reasons.join("; ");
        if refused.len() == batch.len() {
            return Err(ExportError::rejected(message));
        }
        refused.sort_unstable();
        Err(ExportError::rejected_events(refused, message))
    }

    async fn healthcheck(&self) -> Result<(), ExportError> {
        let client = self.client().await;
        client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(e, &self.bucket, ""))
    }
}

fn build(ctx: &ExporterContext) -> Result<Box<dyn Exporter>, ConfigError> {
    let section = format!("exporters.{}", ctx.section.name);
    let cfg: S3Config = ctx.section.parse()?;
    let single_kind = ctx.section.options.events.as_ref().is_some_and(|k| k.len() == 1);
    if !cfg.prefix.contains("{kind}") && !single_kind {
        return Err(ConfigError::key(
            format!("{section}.prefix"),
            format!(
                "{:?} has no {{kind}} but this instance receives several kinds; add {{kind}} or set `events` to one kind",
                cfg.prefix
            ),
        ));
    }
    Ok(Box::new(S3Exporter::new(&cfg, &section)?))
}

/// The `s3` exporter type. Parts roll at 64 MiB (uncompressed) or 5 minutes.
pub static FACTORY: ExporterFactory = ExporterFactory {
    type_name: "s3",
    description: "gzip NDJSON objects on S3, hive partitions by event time",
    build,
    defaults: ExporterDefaults {
        batch_max_events: Some(1_000_000),
        batch_max_bytes: Some(64 << 20),
        flush_interval: Some(Duration::from_secs(300)),
        batches_in_flight: None,
    },
    enabled_by_default: usage_core::registry::always_enabled,
    check: usage_core::registry::parses_as::<crate::config::S3Config>,
};
