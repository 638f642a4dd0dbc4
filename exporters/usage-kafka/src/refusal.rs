//! Why the brokers refuse this client at connection time: a wrong password, a
//! certificate one side does not trust. librdkafka reports it only through its
//! error callback; messages then just time out. Kept until a message gets through,
//! so the exporter pauses with the reason instead of retrying blind.

use crate::tracker::lock;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The same refusal is logged at most this often (librdkafka reports it at every
/// reconnect).
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The last connection refusal, if nothing got through since.
#[derive(Default)]
pub(crate) struct ConnectionRefusal {
    seen: AtomicBool,
    last: Mutex<Option<Noted>>,
}

struct Noted {
    code: Option<RDKafkaErrorCode>,
    reason: String,
    logged_at: Instant,
}

/// Errors an operator must fix (credentials, certificates): retrying cannot help.
/// A broker that refuses our client certificate shows up as a transport error
/// carrying the TLS alert it sent (e.g. "alert certificate required").
pub(crate) fn is_refusal(e: &KafkaError, reason: &str) -> bool {
    use RDKafkaErrorCode as C;
    if e.rdkafka_error_code() == Some(C::BrokerTransportFailure) && reason.contains("SSL alert number") {
        return true;
    }
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::Authentication
                | C::SSL
                | C::SaslAuthenticationFailed
                | C::UnsupportedSASLMechanism
                | C::IllegalSASLState
        )
    )
}

impl ConnectionRefusal {
    /// An error from librdkafka's error callback.
    pub(crate) fn note(&self, e: &KafkaError, reason: &str) {
        if !is_refusal(e, reason) {
            tracing::debug!("librdkafka: {e}: {reason}");
            return;
        }
        let code = e.rdkafka_error_code();
        let mut last = lock(&self.last);
        let logged_at = match &*last {
            Some(n) if n.code == code && n.logged_at.elapsed() < LOG_EVERY => n.logged_at,
            _ => {
                tracing::warn!("kafka: the brokers refuse this client: {reason}");
                Instant::now()
            }
        };
        *last = Some(Noted {
            code,
            reason: reason.to_string(),
            logged_at,
        });
        self.seen.store(true, SeqCst);
    }

    /// Something got through: the connection is accepted. Called per delivered
    /// message, so the usual case is a plain load, not a write to a shared line.
    pub(crate) fn clear(&self) {
        if self.seen.load(SeqCst) && self.seen.swap(false, SeqCst) {
            *lock(&self.last) = None;
        }
    }

    /// The standing refusal, if any.
    pub(crate) fn current(&self) -> Option<String> {
        if !self.seen.load(SeqCst) {
            return None;
        }
        lock(&self.last).as_ref().map(|n| n.reason.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_stands_until_something_gets_through() {
        let r = ConnectionRefusal::default();
        r.note(
            &KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
        assert_eq!(r.current(), None, "a broker being down is not a refusal");
        r.note(
            &KafkaError::Global(RDKafkaErrorCode::Authentication),
            "SASL authentication error: broker responded with unknown-user",
        );
        assert!(r.current().unwrap().contains("unknown-user"));
        r.note(&KafkaError::Global(RDKafkaErrorCode::SSL), "certificate verify failed");
        assert_eq!(r.current().as_deref(), Some("certificate verify failed"));
        r.note(
            &KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure),
            "Receive failed: tlsv13 alert certificate required: SSL alert number 116",
        );
        assert!(r.current().unwrap().contains("certificate required"));
        r.clear();
        assert_eq!(r.current(), None);
    }
}
