//! Secrets (API keys, passwords) that never reach logs, errors or `Debug` output.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;

/// A secret from config, an environment variable or a file. It is read each time
/// [`Secret::expose`] is called, so a rotated key in the env var or file is picked up.
///
/// In TOML: `api_key = "..."`, `api_key = { env = "METRICS_API_KEY" }` or
/// `api_key = { file = "/run/secrets/metrics_key" }`.
///
/// ```
/// use usage_core::Secret;
/// let s = Secret::new("hunter2");
/// assert_eq!(s.expose().unwrap(), "hunter2");
/// assert_eq!(format!("{s:?}"), "Secret(***)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Source);

#[derive(Clone, PartialEq, Eq)]
enum Source {
    Value(String),
    Env(String),
    File(PathBuf),
}

/// A secret that could not be read; never contains the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SecretError(String);

impl Secret {
    /// A literal secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Source::Value(value.into()))
    }

    /// A secret read from an environment variable.
    pub fn from_env(var: impl Into<String>) -> Self {
        Secret(Source::Env(var.into()))
    }

    /// A secret read from a file (surrounding whitespace trimmed).
    pub fn from_file(path: impl Into<PathBuf>) -> Self {
        Secret(Source::File(path.into()))
    }

    /// Reads the current value. Errors name the variable or file, never the value.
    pub fn expose(&self) -> Result<String, SecretError> {
        let v = match &self.0 {
            Source::Value(v) => v.clone(),
            Source::Env(var) => std::env::var(var)
                .map_err(|_| SecretError(format!("environment variable {var} is not set (or not UTF-8)")))?,
            Source::File(p) => std::fs::read_to_string(p)
                .map_err(|e| SecretError(format!("cannot read secret file {}: {e}", p.display())))?
                .trim()
                .to_string(),
        };
        if v.is_empty() {
            return Err(SecretError(format!("{} is empty", self.describe())));
        }
        Ok(v)
    }

    /// Where the secret comes from, safe to log (`"inline value"`, `"env METRICS_API_KEY"`, ...).
    pub fn describe(&self) -> String {
        match &self.0 {
            Source::Value(_) => "inline secret".into(),
            Source::Env(v) => format!("env {v}"),
            Source::File(p) => format!("file {}", p.display()),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::Value(_) => f.write_str("Secret(***)"),
            Source::Env(v) => write!(f, "Secret(env {v})"),
            Source::File(p) => write!(f, "Secret(file {})", p.display()),
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, { env = \"VAR\" } or { file = \"/path\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret::new(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Secret, A::Error> {
                let mut out = None;
                while let Some(key) = map.next_key::<String>()? {
                    let val: String = map.next_value()?;
                    let s = match key.as_str() {
                        "env" => Secret::from_env(val),
                        "file" => Secret::from_file(val),
                        other => return Err(de::Error::unknown_field(other, &["env", "file"])),
                    };
                    if out.replace(s).is_some() {
                        return Err(de::Error::custom("give exactly one of `env` or `file`"));
                    }
                }
                out.ok_or_else(|| de::Error::custom("give one of `env` or `file`"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("sk_live_123");
        assert!(!format!("{s:?}").contains("sk_live"));
        assert!(!s.describe().contains("sk_live"));
    }

    #[test]
    fn file_secret_is_reread_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        std::fs::write(&p, "one\n").unwrap();
        let s = Secret::from_file(&p);
        assert_eq!(s.expose().unwrap(), "one");
        std::fs::write(&p, "two").unwrap();
        assert_eq!(s.expose().unwrap(), "two");
        std::fs::write(&p, "  ").unwrap();
        let e = s.expose().unwrap_err().to_string();
        assert!(e.contains("is empty"), "{e}");
    }

    #[test]
    fn missing_env_names_the_variable() {
        let e = Secret::from_env("USAGE_TEST_SURELY_UNSET_VAR").expose().unwrap_err();
        assert!(e.to_string().contains("USAGE_TEST_SURELY_UNSET_VAR"));
    }
}
