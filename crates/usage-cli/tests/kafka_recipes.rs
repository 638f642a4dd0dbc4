//! The managed-Kafka recipes of docs/kafka.md, as written, pass `usage check`'s
//! configuration stage: only the healthcheck fails (CI has no route to the clusters).

use std::path::Path;
use std::process::Command;

const DOC: &str = include_str!("../../../docs/kafka.md");

/// The TOML blocks of the "Managed Kafka recipes" section.
fn recipes() -> Vec<String> {
    let section = DOC
        .split("### Managed Kafka recipes")
        .nth(1)
        .expect("docs/kafka.md has the recipes section");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next().map(str::to_string))
        .collect()
}

#[test]
fn every_managed_kafka_recipe_is_accepted_by_usage_check() {
    let recipes = recipes();
    assert_eq!(recipes.len(), 3, "Confluent Cloud, MSK and Aiven");
    let dir = tempfile::tempdir().unwrap();
    // The files the recipes name: librdkafka loads the certificates at start.
    let files = dir.path().join("kafka");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("msk-password"), "stand-in").unwrap();
    let openssl = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(&files)
            .output()
            .expect("openssl");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    for (cn, key, cert) in [
        ("test CA", "ca.key", "ca.pem"),
        ("usage", "service.key", "service.cert"),
    ] {
        let subject = format!("/CN={cn}");
        openssl(&[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", &subject, "-keyout", key, "-out",
            cert,
        ]);
    }
    for recipe in recipes {
        let config = recipe
            .replace("/etc/usage/kafka/", &format!("{}/", files.display()))
            .replace("/run/secrets/", &format!("{}/", files.display()));
        let path = dir.path().join("usage.toml");
        std::fs::write(&path, &config).unwrap();
        let out = check(dir.path(), &path);
        let name = recipe.lines().next().unwrap_or_default();
        assert!(out.contains("config: ok"), "{name}: {out}");
        assert!(out.contains("type kafka"), "{name}: the exporter was built: {out}");
        assert!(out.contains("FAILED"), "{name}: only the healthcheck fails: {out}");
        assert!(!out.contains("usage: error"), "{name}: {out}");
        assert!(!out.contains("stand-in"), "{name}: no secret in the output: {out}");
    }
}

fn check(dir: &Path, config: &Path) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_usage"))
        .args(["check", "--timeout", "1s", "--config"])
        .arg(config)
        .current_dir(dir)
        .env("CONFLUENT_API_SECRET", "stand-in")
        .env_remove("USAGE_CONFIG")
        .output()
        .expect("run usage");
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_certificate_file_librdkafka_cannot_load_is_named_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate").unwrap();
    let path = dir.path().join("usage.toml");
    std::fs::write(
        &path,
        format!(
            "[exporters.k]\ntype = \"kafka\"\nbrokers = \"b:9093\"\ntls = {{ ca = {:?} }}\n",
            ca.display().to_string()
        ),
    )
    .unwrap();
    let out = check(dir.path(), &path);
    assert!(out.contains("exporters.k.tls.ca"), "{out}");
}
