//! What exporters are given and what they answer: the [`Exporter`](exporter::Exporter)
//! trait and its errors, the [`Batch`](batch::Batch) they receive (zero-copy views over
//! the router's chunks), the registry that builds them from config, and the one rule
//! every HTTP exporter uses to turn an answer into a retry, a pause or a refusal.
//! Nothing here depends on the pipeline.

pub(crate) mod batch;
pub(crate) mod exporter;
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
