use super::*;
use crate::KafkaConfig;
use serde_json::json;

fn parse(v: serde_json::Value) -> Result<KafkaConfig, String> {
    serde_json::from_value(v).map_err(|e| e.to_string())
}

fn props(cfg: &KafkaConfig) -> Result<ClientConfig, ConfigError> {
    crate::config::client_config(cfg, "exporters.k")
}

fn get<'a>(c: &'a ClientConfig, k: &str) -> Option<&'a str> {
    c.get(k)
}

#[test]
fn a_login_turns_tls_on_with_the_system_trust_store() {
    let cfg = parse(json!({"brokers": "b:9093",
        "sasl": {"mechanism": "SCRAM-SHA-512", "username": "usage", "password": "pw-123"}}))
    .unwrap();
    let c = props(&cfg).unwrap();
    assert_eq!(get(&c, "security.protocol"), Some("SASL_SSL"));
    assert_eq!(get(&c, "sasl.mechanisms"), Some("SCRAM-SHA-512"));
    assert_eq!(get(&c, "sasl.username"), Some("usage"));
    assert_eq!(get(&c, "sasl.password"), Some("pw-123"));
    assert_eq!(get(&c, "ssl.ca.location"), Some("probe"));
    // Nothing secured without the keys.
    let plain = props(&parse(json!({"brokers": "b:9092"})).unwrap()).unwrap();
    assert_eq!(get(&plain, "security.protocol"), None);
}

#[test]
fn tls_alone_or_switched_off_under_a_login() {
    let cfg = parse(json!({"brokers": "b", "tls": true})).unwrap();
    assert_eq!(get(&props(&cfg).unwrap(), "security.protocol"), Some("SSL"));
    let cfg = parse(json!({"brokers": "b", "tls": false,
        "sasl": {"mechanism": "scram-sha-256", "username": "u", "password": "p"}}))
    .unwrap();
    let c = props(&cfg).unwrap();
    assert_eq!(get(&c, "security.protocol"), Some("SASL_PLAINTEXT"));
    assert_eq!(get(&c, "ssl.ca.location"), None);
    let mut c = ClientConfig::new();
    let plain_in_clear = SaslConfig {
        mechanism: SaslMechanism::Plain,
        username: "u".into(),
        password: Secret::new("p"),
    };
    let warning = apply(
        Some(&Tls::Enabled(false)),
        Some(&plain_in_clear),
        &[],
        "exporters.k",
        &mut c,
    )
    .unwrap();
    assert!(warning.unwrap().contains("unencrypted"));
}

#[test]
fn tls_files_are_checked_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let cert = dir.path().join("client.pem");
    let key = dir.path().join("client.key");
    for f in [&ca, &cert, &key] {
        std::fs::write(f, "-----BEGIN-----").unwrap();
    }
    let cfg = parse(json!({"brokers": "b", "tls": {"ca": ca, "cert": cert, "key": key,
        "key_password": "kp", "verify_hostname": false}}))
    .unwrap();
    let c = props(&cfg).unwrap();
    assert_eq!(get(&c, "ssl.ca.location"), ca.to_str());
    assert_eq!(get(&c, "ssl.certificate.location"), cert.to_str());
    assert_eq!(get(&c, "ssl.key.location"), key.to_str());
    assert_eq!(get(&c, "ssl.key.password"), Some("kp"));
    assert_eq!(get(&c, "ssl.endpoint.identification.algorithm"), Some("none"));

    let missing = dir.path().join("nope.pem");
    let err = props(&parse(json!({"brokers": "b", "tls": {"ca": missing}})).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("exporters.k.tls.ca") && err.contains("nope.pem"), "{err}");
    let err = props(&parse(json!({"brokers": "b", "tls": {"cert": cert}})).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("exporters.k.tls.key"), "{err}");
    let err = props(&parse(json!({"brokers": "b", "tls": {"key_password": "x"}})).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("exporters.k.tls.key_password"), "{err}");
}

#[test]
fn misspelt_or_doubled_settings_are_refused_by_name() {
    let err = parse(json!({"brokers": "b", "tls": {"cafile": "/x"}})).unwrap_err();
    assert!(err.contains("unknown field `cafile`"), "{err}");
    let err =
        parse(json!({"brokers": "b", "sasl": {"mechanism": "GSSAPI", "username": "u", "password": "p"}})).unwrap_err();
    assert!(err.contains("GSSAPI"), "{err}");
    let cfg = parse(json!({"brokers": "b", "tls": true,
        "librdkafka": {"security.protocol": "SSL"}}))
    .unwrap();
    let err = props(&cfg).unwrap_err().to_string();
    assert!(err.contains("librdkafka.\"security.protocol\""), "{err}");
}

#[test]
fn a_password_from_the_environment_is_read_and_never_shown() {
    let var = "USAGE_KAFKA_SECURITY_TEST_PASSWORD";
    let cfg = parse(json!({"brokers": "b",
        "sasl": {"mechanism": "PLAIN", "username": "u", "password": {"env": var}}}))
    .unwrap();
    let err = props(&cfg).unwrap_err().to_string();
    assert!(err.contains("exporters.k.sasl.password") && err.contains(var), "{err}");
    // The variable is this test's own.
    std::env::set_var(var, "s3cret-from-env");
    let c = props(&cfg).unwrap();
    assert_eq!(get(&c, "sasl.password"), Some("s3cret-from-env"));
    let inline = parse(json!({"brokers": "b",
        "sasl": {"mechanism": "PLAIN", "username": "u", "password": "s3cret-inline"},
        "tls": {"key_password": "s3cret-key"}}))
    .unwrap();
    let shown = format!("{inline:?} {cfg:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
}
