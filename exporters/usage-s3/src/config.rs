//! `[exporters.<name>] type = "s3"` keys.

use serde::Deserialize;
use usage_core::config::units;
use usage_core::Secret;
use usage_file::Compression;

/// The S3 exporter's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix; `{kind}` is replaced by the event kind. Default `"{kind}"`, which
    /// gives the same layout as the `file` exporter.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Region (default `us-east-1`, or the AWS chain's when no endpoint is set).
    pub region: Option<String>,
    /// Custom endpoint for S3-compatible stores, e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    /// Path-style addressing (default: on when `endpoint` is set).
    pub path_style: Option<bool>,
    /// Static access key id (default: the standard AWS credential chain).
    pub access_key_id: Option<Secret>,
    /// Static secret access key.
    pub secret_access_key: Option<Secret>,
    /// `gzip` (default, what Athena reads), `zstd` or `none`.
    #[serde(default = "default_compression")]
    pub compression: Compression,
    /// Compressed parts larger than this use a multipart upload (default 16MiB).
    #[serde(default, deserialize_with = "units::opt_bytes")]
    pub multipart_threshold: Option<usize>,
    /// Write each object once with `If-None-Match: *` (default true): a replayed
    /// batch is a no-op and nothing is overwritten. Set false for stores that do
    /// not support it (they answer 501); objects are then overwritten by replays
    /// of the same batch, with the same content.
    #[serde(default = "yes")]
    pub conditional_writes: bool,
}

fn yes() -> bool {
    true
}

fn default_prefix() -> String {
    "{kind}".into()
}

fn default_compression() -> Compression {
    Compression::Gzip
}
