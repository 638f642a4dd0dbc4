//! Objects are written once: `If-None-Match: *` on PutObject and on
//! CompleteMultipartUpload, so a replayed batch is a no-op and no batch can replace
//! another's object. Each object carries the id of the batch that wrote it
//! (`x-amz-meta-usage-batch`): a refused write is a replay when that id is ours.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::Client;
use usage_core::ExportError;

/// The metadata key naming the batch that wrote an object.
pub(crate) const BATCH_META: &str = "usage-batch";

/// Whether the store refused a conditional write because the key exists.
pub(crate) fn key_exists<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    let status = match err {
        SdkError::ServiceError(s) => Some(s.raw().status().as_u16()),
        SdkError::ResponseError(r) => Some(r.raw().status().as_u16()),
        _ => None,
    };
    status == Some(412) || err.code() == Some("PreconditionFailed")
}

/// What is stored at `key`, if anything: the batch id it carries (empty when it
/// carries none, i.e. something else wrote it).
pub(crate) async fn stored_batch(client: &Client, bucket: &str, key: &str) -> Result<Option<String>, ExportError> {
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(head) => Ok(Some(
            head.metadata()
                .and_then(|m| m.get(BATCH_META))
                .cloned()
                .unwrap_or_default(),
        )),
        Err(SdkError::ServiceError(s)) if s.raw().status().as_u16() == 404 => Ok(None),
        Err(e) => Err(ExportError::retryable(format!(
            "s3 s3://{bucket}/{key}: HeadObject: {}",
            usage_core::export::error_chain(&e)
        ))),
    }
}

/// The key is taken: fine if by this batch (a replay, or an earlier attempt whose
/// answer was lost); otherwise the batch is refused rather than overwrite.
pub(crate) fn taken(bucket: &str, key: &str, stored: &str, batch: &str) -> Result<(), ExportError> {
    if stored == batch {
        tracing::debug!(bucket, key, "already stored by this batch (a replay): nothing to write");
        return Ok(());
    }
    let by = if stored.is_empty() {
        "an object usage did not write".to_string()
    } else {
        format!("batch {stored}")
    };
    Err(ExportError::rejected(format!(
        "s3 s3://{bucket}/{key}: the key holds {by}; not overwritten"
    )))
}
