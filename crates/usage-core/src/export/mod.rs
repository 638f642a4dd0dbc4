//! What exporters are given and what they answer: the [`Exporter`](exporter::Exporter)
//! trait and its errors, the [`Batch`](batch::Batch) they receive (zero-copy views over
//! the router's chunks), the registry that builds them from config, and the one rule
//! every HTTP exporter uses to turn an answer into a retry, a pause or a refusal.
//! Nothing here depends on the pipeline.

pub(crate) mod batch;
pub(crate) mod exporter;
pub(crate) mod hand_off;
pub mod http;
pub mod registry;

/// An error and every source under it, joined with `": "`, each said once: SDK errors
/// often display only their outermost layer ("dispatch failure"), and the reason an
/// operator needs ("Connection refused") is further down.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

/// A URL as it may appear in logs, errors and stats: credentials in its userinfo
/// and everything after `?` (tokens often ride there) are replaced, the rest kept
/// so an operator still sees where it points.
///
/// ```
/// use usage_core::export::redact_url;
/// assert_eq!(redact_url("https://user:pw@host:8123/db?password=x"), "https://***@host:8123/db?***");
/// assert_eq!(redact_url("http://collector:4318"), "http://collector:4318");
/// ```
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (rest, query) = match rest.split_once('?') {
        Some((r, _)) => (r, "?***"),
        None => (rest, ""),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => format!("***@{}", &rest[at + 1..]),
        None => rest.to_string(),
    };
    let scheme = if scheme.is_empty() {
        String::new()
    } else {
        format!("{scheme}://")
    };
    format!("{scheme}{rest}{query}")
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("dispatch failure")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_source_is_said_once() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(
            super::error_chain(&Outer(inner)),
            "dispatch failure: Connection refused"
        );
    }
}
