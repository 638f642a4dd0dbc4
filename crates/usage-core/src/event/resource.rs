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

/// The pipeline's resource. The config's `service_name` and `service_instance_id`
/// win; where the config leaves them at their defaults, OpenTelemetry's variables
/// are honoured as its SDKs do: `OTEL_SERVICE_NAME`, then `service.name` and
/// `service.instance.id` in `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k=v`, values
/// percent-decoded).
pub(crate) fn from_config_and_env(
    service_name: &str,
    instance_id: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Resource {
    let attributes = env("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default();
    let attribute = |key: &str| {
        attributes.split(',').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k.trim() == key)
                .then(|| percent_decode(v.trim()))
                .filter(|v| !v.is_empty())
        })
    };
    let name = if service_name != "unknown_service" {
        service_name.to_string()
    } else {
        env("OTEL_SERVICE_NAME")
            .filter(|v| !v.trim().is_empty())
            .or_else(|| attribute("service.name"))
            .unwrap_or_else(|| service_name.to_string())
    };
    let r = Resource::new(name);
    match instance_id
        .map(str::to_string)
        .or_else(|| attribute("service.instance.id"))
    {
        Some(id) => r.with_instance_id(id),
        None => r,
    }
}

/// `%XX` escapes decoded (the W3C baggage encoding OTEL_RESOURCE_ATTRIBUTES uses);
/// a malformed escape is kept as is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn opentelemetry_variables_fill_what_the_config_leaves_unset() {
        let r = from_config_and_env("unknown_service", None, env(&[("OTEL_SERVICE_NAME", "relay")]));
        assert_eq!(r.service_name, "relay");
        let vars = [(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=prod,service.name=lava%20rpc,service.instance.id=rpc-7",
        )];
        let r = from_config_and_env("unknown_service", None, env(&vars));
        assert_eq!(
            (r.service_name.as_str(), r.service_instance_id.as_str()),
            ("lava rpc", "rpc-7")
        );
        // OTEL_SERVICE_NAME wins over the attribute; the config wins over both.
        let vars = [
            ("OTEL_SERVICE_NAME", "relay"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=other"),
        ];
        assert_eq!(
            from_config_and_env("unknown_service", None, env(&vars)).service_name,
            "relay"
        );
        let r = from_config_and_env("billing", Some("b-1"), env(&vars));
        assert_eq!(
            (r.service_name.as_str(), r.service_instance_id.as_str()),
            ("billing", "b-1")
        );
        // Nothing set: the defaults.
        let r = from_config_and_env("unknown_service", None, env(&[]));
        assert_eq!(r.service_name, "unknown_service");
        assert!(r.service_instance_id.ends_with(&format!("-{}", std::process::id())));
        assert_eq!(percent_decode("a%2Cb%zz"), "a,b%zz");
    }
}
