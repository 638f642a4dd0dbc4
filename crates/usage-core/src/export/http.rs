//! One rule for HTTP answers, shared by every exporter that speaks HTTP (`http`,
//! `otlp`, and `clickhouse` for answers that carry no ClickHouse error code, such
//! as a proxy's), so the same status means the same thing whichever destination
//! sent it.
//!
//! | answer | meaning |
//! |---|---|
//! | 401, 403 | paused: the key is wrong or lacks rights; an operator fixes it |
//! | 3xx | paused: our clients never follow redirects (a batch must not land somewhere nobody configured); point the URL at the final address |
//! | 413 | too large: the batch is split and sent again |
//! | 408, 409, 429, 5xx | retried, after `Retry-After` when the server gave one (409: the same batch is still in progress there, as `usage gateway` answers for an `Idempotency-Key`) |
//! | other 4xx | refused: dead-lettered, never retried |
//! | anything else (1xx, unknown) | retried |

use super::exporter::ExportError;
use std::time::{Duration, SystemTime};

/// The longest `Retry-After` honoured. A server asking for longer is asked again
/// then: a typo in its header must not stall a billing pipeline for a day.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// Parses a `Retry-After` value, delay-seconds or an HTTP date (a date in the past
/// is zero), capped at [`MAX_RETRY_AFTER`]. `None` when it is neither.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    let after = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let when = httpdate::parse_http_date(v).ok()?;
            when.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(after.min(MAX_RETRY_AFTER))
}

/// What a non-success HTTP answer means for the batch (see the module table).
/// `message` names the request and quotes the answer; it is kept whole.
pub fn classify(status: u16, retry_after: Option<Duration>, message: String) -> ExportError {
    let retry = |message: String| match retry_after {
        Some(d) => ExportError::retry_after(message, d.min(MAX_RETRY_AFTER)),
        None => ExportError::retryable(message),
    };
    match status {
        401 | 403 => ExportError::paused(message),
        300..=399 => ExportError::paused(format!(
            "{message} (a redirect: it is not followed; set the URL to the final address)"
        )),
        413 => ExportError::too_large(message),
        408 | 409 | 429 | 500..=599 => retry(message),
        400..=499 => ExportError::rejected(message),
        _ => retry(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(e: &ExportError) -> String {
        format!("{e:?}")
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn every_status_class_has_one_meaning() {
        let after = Some(Duration::from_secs(7));
        let table: [(u16, Option<Duration>, &str); 14] = [
            (401, None, "Paused"),
            (403, None, "Paused"),
            (301, None, "Paused"),
            (308, None, "Paused"),
            (413, None, "TooLarge"),
            (408, None, "Retryable"),
            (409, after, "Retryable"),
            (429, after, "Retryable"),
            (500, None, "Retryable"),
            (503, after, "Retryable"),
            (400, None, "Rejected"),
            (404, None, "Rejected"),
            (422, None, "Rejected"),
            (101, None, "Retryable"),
        ];
        for (status, after, want) in table {
            let e = classify(status, after, format!("POST x -> {status}"));
            assert_eq!(kind(&e), want, "{status}: {e:?}");
            assert!(e.to_string().contains(&format!("-> {status}")), "{e}");
            if let ExportError::Retryable { retry_after, .. } = &e {
                assert_eq!(*retry_after, after, "{status}");
            }
        }
    }

    #[test]
    fn retry_after_in_seconds_or_an_http_date_capped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_633_600);
        assert_eq!(retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        let later = now + Duration::from_secs(120);
        assert_eq!(
            retry_after(&httpdate::fmt_http_date(later), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-1", now), None);
    }
}
