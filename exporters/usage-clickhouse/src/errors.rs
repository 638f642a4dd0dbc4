//! What a ClickHouse error means for the pipeline, decided by its error code
//! (`Code: N.` in the answer) in one table-tested place. An answer with no code
//! (a proxy or load balancer in front of the server answered) falls back to the
//! HTTP rule every HTTP exporter shares, `usage_core::export::http::classify`.

use usage_core::export::http;
use usage_core::ExportError;

/// The pipeline's reading of one ClickHouse error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Transient (network, overload, replicas, Keeper): retry the same batch.
    Retry,
    /// The table changed under us (dropped, recreated, a column gone): forget what
    /// we know of the tables, re-create or migrate, then retry.
    Schema,
    /// Credentials or rights refused: pause, keep the data, probe later.
    Pause,
    /// The input exceeds a server limit: split the batch.
    TooLarge,
    /// The data itself is refused for good: dead-letter the batch with the reason.
    Reject,
}

/// Codes from ClickHouse's `ErrorCodes.cpp`, by what they mean here.
const RETRY: &[u32] = &[
    3,   // UNEXPECTED_END_OF_FILE
    159, // TIMEOUT_EXCEEDED
    164, // READONLY
    202, // TOO_MANY_SIMULTANEOUS_QUERIES
    209, // SOCKET_TIMEOUT
    210, // NETWORK_ERROR
    225, // NO_ZOOKEEPER
    236, // ABORTED
    241, // MEMORY_LIMIT_EXCEEDED
    242, // TABLE_IS_READ_ONLY
    252, // TOO_MANY_PARTS
    285, // TOO_FEW_LIVE_REPLICAS
    319, // UNKNOWN_STATUS_OF_INSERT
    394, // QUERY_WAS_CANCELLED
    425, // SYSTEM_ERROR
    439, // CANNOT_SCHEDULE_TASK
    999, // KEEPER_EXCEPTION
];
const SCHEMA: &[u32] = &[
    16, // NO_SUCH_COLUMN_IN_TABLE
    60, // UNKNOWN_TABLE
    81, // UNKNOWN_DATABASE
];
const PAUSE: &[u32] = &[
    192, // UNKNOWN_USER
    193, // WRONG_PASSWORD
    194, // REQUIRED_PASSWORD
    195, // IP_ADDRESS_NOT_ALLOWED
    497, // ACCESS_DENIED
    516, // AUTHENTICATION_FAILED
];
const TOO_LARGE: &[u32] = &[
    131, // TOO_LARGE_STRING_SIZE
    396, // TOO_MANY_ROWS_OR_BYTES
];
const REJECT: &[u32] = &[
    6,   // CANNOT_PARSE_TEXT
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    33,  // CANNOT_READ_ALL_DATA
    53,  // TYPE_MISMATCH
    62,  // SYNTAX_ERROR
    69,  // ARGUMENT_OUT_OF_BOUND
    70,  // CANNOT_CONVERT_TYPE
    117, // INCORRECT_DATA
];

/// The class of a server error code. `RETRY` lists the transient codes we know;
/// codes not listed anywhere retry too: holding a batch back
/// (visible in `last_error` and the retry counter) is safer than dead-lettering
/// billing data on an error nobody has classified.
pub fn class_of(code: u32) -> Class {
    let is = |list: &[u32]| list.contains(&code);
    if is(SCHEMA) {
        Class::Schema
    } else if is(PAUSE) {
        Class::Pause
    } else if is(TOO_LARGE) {
        Class::TooLarge
    } else if is(REJECT) {
        Class::Reject
    } else {
        Class::Retry
    }
}

/// Whether a code is in one of the lists (an unlisted one is logged when met).
pub fn is_listed(code: u32) -> bool {
    [RETRY, SCHEMA, PAUSE, TOO_LARGE, REJECT]
        .iter()
        .any(|l| l.contains(&code))
}

/// The `N` of `Code: N.` in an error text.
pub fn code_in(text: &str) -> Option<u32> {
    text.split("Code: ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
}

/// The status of an answer that carried no ClickHouse exception: the client then
/// reports only the status line (`502 Bad Gateway`).
pub fn status_in(text: &str) -> Option<u16> {
    let (code, reason) = text.split_once(' ').unwrap_or((text, ""));
    let status: u16 = code.parse().ok().filter(|s| (100..=599).contains(s))?;
    (code.len() == 3 && !reason.contains("Code: ")).then_some(status)
}

/// A client error as the pipeline's error, with its class (network trouble retries).
pub fn classify(e: clickhouse::error::Error, what: &str) -> (Class, ExportError) {
    use clickhouse::error::Error as E;
    let text = e.to_string();
    let message = format!("clickhouse {what}: {text}");
    let detail = match &e {
        E::BadResponse(detail) => Some(detail.as_str()),
        _ => None,
    };
    let class = match (&e, code_in(&text)) {
        (E::Network(_) | E::TimedOut, _) => Class::Retry,
        (_, Some(code)) => {
            if !is_listed(code) {
                tracing::warn!(code, what, "unclassified clickhouse error code: retrying the batch");
            }
            class_of(code)
        }
        _ => match detail.and_then(status_in) {
            // Not ClickHouse's own answer: the shared HTTP rule decides.
            Some(status) => {
                let error = http::classify(status, None, message);
                return (class_of_http(&error), error);
            }
            None => Class::Retry,
        },
    };
    let error = match class {
        Class::Retry | Class::Schema => ExportError::retryable(message),
        Class::Pause => ExportError::paused(message),
        Class::TooLarge => ExportError::too_large(message),
        Class::Reject => ExportError::rejected(message),
    };
    (class, error)
}

/// The class the HTTP rule's verdict amounts to.
fn class_of_http(error: &ExportError) -> Class {
    match error {
        ExportError::Paused { .. } => Class::Pause,
        ExportError::TooLarge { .. } => Class::TooLarge,
        ExportError::Rejected { .. } => Class::Reject,
        _ => Class::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_code_and_an_unknown_one() {
        for (code, want) in [
            (60, Class::Schema),
            (81, Class::Schema),
            (16, Class::Schema),
            (516, Class::Pause),
            (497, Class::Pause),
            (193, Class::Pause),
            (396, Class::TooLarge),
            (131, Class::TooLarge),
            (27, Class::Reject),
            (62, Class::Reject),
            (53, Class::Reject),
            (252, Class::Retry),
            (999, Class::Retry),
            (225, Class::Retry),
            (319, Class::Retry),
            (241, Class::Retry),
            (123_456, Class::Retry),
        ] {
            assert_eq!(class_of(code), want, "code {code}");
        }
        assert!(is_listed(252) && is_listed(60) && !is_listed(123_456));
        let lists = [RETRY, SCHEMA, PAUSE, TOO_LARGE, REJECT];
        for (i, a) in lists.iter().enumerate() {
            for b in &lists[i + 1..] {
                assert!(a.iter().all(|c| !b.contains(c)), "a code in two classes");
            }
        }
    }

    #[test]
    fn codes_are_read_from_server_texts() {
        assert_eq!(
            code_in("bad response: Code: 60. DB::Exception: Unknown table expression identifier 'x'. (UNKNOWN_TABLE)"),
            Some(60)
        );
        assert_eq!(
            code_in("Code: 252, e.displayText() = DB::Exception: Too many parts"),
            Some(252)
        );
        assert_eq!(code_in("connection refused"), None);
    }

    #[test]
    fn an_answer_without_a_code_follows_the_http_rule() {
        for (detail, want) in [
            ("401 Unauthorized", Class::Pause),
            ("403 Forbidden", Class::Pause),
            ("307 Temporary Redirect", Class::Pause),
            ("413 Payload Too Large", Class::TooLarge),
            ("404 Not Found", Class::Reject),
            ("429 Too Many Requests", Class::Retry),
            ("502 Bad Gateway", Class::Retry),
            ("<html>bad gateway</html>", Class::Retry),
            ("Code: 60. DB::Exception: Unknown table", Class::Schema),
        ] {
            let e = clickhouse::error::Error::BadResponse(detail.into());
            let (class, error) = classify(e, "insert into t");
            assert_eq!(class, want, "{detail}");
            assert!(error.to_string().contains(detail), "{error}");
        }
        assert_eq!(status_in("503 Service Unavailable"), Some(503));
        assert_eq!(status_in("200"), Some(200));
        assert_eq!(status_in("1234 x"), None);
        assert_eq!(status_in("60. DB::Exception"), None);
    }
}
