//! `tls` and `sasl`: the encryption and login of a secured cluster, as first-class
//! keys instead of librdkafka properties (checked at start, secrets never shown).

use rdkafka::config::ClientConfig;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use usage_core::{ConfigError, Secret};

/// `tls = true`, `tls = false`, or `tls = { ca = ..., cert = ..., key = ... }`.
#[derive(Debug, Clone)]
pub enum Tls {
    /// On with the system's CAs and hostname checks, or off.
    Enabled(bool),
    /// On, with these settings.
    With(TlsConfig),
}

impl<'de> Deserialize<'de> for Tls {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // By hand, not `untagged`: a misspelt key inside the table must say so,
        // not "did not match any variant".
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tls;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or a table { ca, cert, key, key_password, verify_hostname }")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Tls, E> {
                Ok(Tls::Enabled(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Tls, A::Error> {
                TlsConfig::deserialize(de::value::MapAccessDeserializer::new(map)).map(Tls::With)
            }
        }
        d.deserialize_any(V)
    }
}

/// TLS settings. Files are PEM and checked for readability at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The CA(s) that signed the brokers' certificates (`ssl.ca.location`);
    /// default: the system's trust store.
    pub ca: Option<PathBuf>,
    /// Client certificate for mutual TLS (`ssl.certificate.location`); needs `key`.
    pub cert: Option<PathBuf>,
    /// Client private key (`ssl.key.location`); needs `cert`.
    pub key: Option<PathBuf>,
    /// Password of an encrypted `key` (`ssl.key.password`).
    pub key_password: Option<Secret>,
    /// Check that a broker's certificate names the host connected to
    /// (`ssl.endpoint.identification.algorithm`, default true).
    #[serde(default = "yes")]
    pub verify_hostname: bool,
}

fn yes() -> bool {
    true
}

/// How the producer logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    /// User name and password sent as is: only over TLS.
    #[serde(rename = "PLAIN", alias = "plain")]
    Plain,
    /// Salted challenge-response, SHA-256.
    #[serde(rename = "SCRAM-SHA-256", alias = "scram-sha-256")]
    ScramSha256,
    /// Salted challenge-response, SHA-512.
    #[serde(rename = "SCRAM-SHA-512", alias = "scram-sha-512")]
    ScramSha512,
}

impl SaslMechanism {
    fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// `sasl = { mechanism, username, password }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    /// `"PLAIN"`, `"SCRAM-SHA-256"` or `"SCRAM-SHA-512"`.
    pub mechanism: SaslMechanism,
    /// The user (or API key) name.
    pub username: String,
    /// The password (or API secret): `{ env = "VAR" }` or `{ file = "/path" }`
    /// keep it out of the config file. Read once, when the producer starts.
    pub password: Secret,
}

/// The librdkafka properties `tls` and `sasl` own: setting one of them in
/// `librdkafka` as well would leave it unclear which applies.
const OWNED: &[&str] = &[
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
];

/// What `tls`/`sasl` mean for librdkafka: `security.protocol` and the rest.
/// `passthrough` names the `librdkafka` table's keys, to refuse overlaps.
/// Returns a warning to log, if any (PLAIN without TLS).
pub(crate) fn apply(
    tls: Option<&Tls>,
    sasl: Option<&SaslConfig>,
    passthrough: &[&str],
    prefix: &str,
    c: &mut ClientConfig,
) -> Result<Option<String>, ConfigError> {
    if tls.is_none() && sasl.is_none() {
        return Ok(None);
    }
    if let Some(k) = passthrough.iter().find(|k| OWNED.contains(k)) {
        return Err(ConfigError::key(
            format!("{prefix}.librdkafka.\"{k}\""),
            "is set by `tls`/`sasl`: use those keys or the librdkafka property, not both",
        ));
    }
    // With a login, TLS is on unless switched off: a password never crosses the
    // network in the clear by default.
    let tls_on = match tls {
        Some(Tls::Enabled(on)) => *on,
        Some(Tls::With(_)) => true,
        None => sasl.is_some(),
    };
    let protocol = match (sasl.is_some(), tls_on) {
        (true, true) => "SASL_SSL",
        (true, false) => "SASL_PLAINTEXT",
        (false, true) => "SSL",
        (false, false) => "PLAINTEXT",
    };
    c.set("security.protocol", protocol);
    if tls_on {
        let settings = match tls {
            Some(Tls::With(t)) => Some(t),
            _ => None,
        };
        apply_tls(settings, &format!("{prefix}.tls"), c)?;
    }
    let mut warning = None;
    if let Some(s) = sasl {
        let password = s
            .password
            .expose()
            .map_err(|e| ConfigError::key(format!("{prefix}.sasl.password"), e))?;
        if s.username.trim().is_empty() {
            return Err(ConfigError::key(format!("{prefix}.sasl.username"), "must not be empty"));
        }
        c.set("sasl.mechanisms", s.mechanism.as_str())
            .set("sasl.username", &s.username)
            .set("sasl.password", password);
        if s.mechanism == SaslMechanism::Plain && !tls_on {
            warning = Some(format!(
                "{prefix}: sasl PLAIN with tls = false sends the password unencrypted"
            ));
        }
    }
    Ok(warning)
}

fn apply_tls(t: Option<&TlsConfig>, prefix: &str, c: &mut ClientConfig) -> Result<(), ConfigError> {
    let Some(t) = t else {
        // librdkafka's own OpenSSL is built in: find the system's trust store.
        c.set("ssl.ca.location", "probe");
        return Ok(());
    };
    let file = |key: &str, p: &Path| -> Result<String, ConfigError> {
        std::fs::File::open(p)
            .map_err(|e| ConfigError::key(format!("{prefix}.{key}"), format!("{}: {e}", p.display())))?;
        Ok(p.display().to_string())
    };
    match &t.ca {
        Some(ca) => c.set("ssl.ca.location", file("ca", ca)?),
        None => c.set("ssl.ca.location", "probe"),
    };
    match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => {
            c.set("ssl.certificate.location", file("cert", cert)?)
                .set("ssl.key.location", file("key", key)?);
        }
        (Some(_), None) => {
            return Err(ConfigError::key(
                format!("{prefix}.key"),
                "`cert` needs its private `key`",
            ))
        }
        (None, Some(_)) => return Err(ConfigError::key(format!("{prefix}.cert"), "`key` needs its `cert`")),
        (None, None) => {}
    }
    if let Some(pw) = &t.key_password {
        if t.key.is_none() {
            return Err(ConfigError::key(
                format!("{prefix}.key_password"),
                "is the password of `key`, which is not set",
            ));
        }
        let pw = pw
            .expose()
            .map_err(|e| ConfigError::key(format!("{prefix}.key_password"), e))?;
        c.set("ssl.key.password", pw);
    }
    c.set(
        "ssl.endpoint.identification.algorithm",
        if t.verify_hostname { "https" } else { "none" },
    );
    Ok(())
}

#[cfg(test)]
#[path = "security_tests.rs"]
mod tests;
