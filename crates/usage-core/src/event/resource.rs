//! Resource attributes: who emitted the events, set once per pipeline.

use crate::event::value::Text;

/// `service.name` and `service.instance.id` of the emitting process.
///
/// ```
/// use usage_core::Resource;
/// let r = Resource::new("relay");
/// assert_eq!(r.service_name, "relay");
/// // hostname-pid, and never empty even when the hostname lookup fails
/// assert!(r.service_instance_id.ends_with(&format!("-{}", std::process::id())));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Resource {
    /// Logical service name (`service.name`).
    pub service_name: Text,
    /// Instance id (`service.instance.id`), default `hostname-pid`.
    pub service_instance_id: Text,
}

impl Resource {
    /// A resource with the default instance id (`hostname-pid`).
    pub fn new(service_name: impl Into<Text>) -> Self {
        Resource {
            service_name: service_name.into(),
            service_instance_id: default_instance_id().into(),
        }
    }

    /// Sets the instance id.
    pub fn with_instance_id(mut self, id: impl Into<Text>) -> Self {
        self.service_instance_id = id.into();
        self
    }
}

impl Default for Resource {
    fn default() -> Self {
        Resource::new("unknown_service")
    }
}

/// `hostname-pid`; a hostname that cannot be read or is not UTF-8 becomes `localhost`.
pub fn default_instance_id() -> String {
    let host = gethostname::gethostname()
        .into_string()
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}-{}", std::process::id())
}
