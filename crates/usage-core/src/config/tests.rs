//! Loading, merging and validating configuration.

use super::*;

#[test]
fn defaults_match_the_docs() {
    let c = UsageConfig::from_toml("").unwrap();
    assert_eq!(c.pipeline.queue_capacity, 50_000);
    assert_eq!(c.pipeline.batch_max_events, 1_000);
    assert_eq!(c.pipeline.flush_interval, Duration::from_millis(500));
    assert_eq!(c.pipeline.export_timeout, Duration::from_secs(10));
    assert!(c.exporters.is_empty());
}

#[test]
fn sections_split_into_type_options_and_settings() {
    let c = UsageConfig::from_toml(
        r#"
        [pipeline]
        queue_max_bytes = "8MiB"
        flush_interval = "250ms"
        [exporters.main]
        type = "kafka"
        events = ["relay_usage"]
        batch_max_bytes = "1MiB"
        topic = "usage.{kind}"
        "#,
    )
    .unwrap();
    assert_eq!(c.pipeline.queue_max_bytes, 8 << 20);
    let s = &c.exporters[0];
    assert_eq!((s.name.as_str(), s.type_name.as_str()), ("main", "kafka"));
    assert_eq!(s.options.events.as_deref(), Some(&["relay_usage".to_string()][..]));
    assert_eq!(s.options.batch_max_bytes, Some(1 << 20));
    assert_eq!(s.settings.keys().collect::<Vec<_>>(), vec!["topic"]);
}

#[test]
fn errors_name_the_key_and_the_bad_value() {
    let e = UsageConfig::from_toml("[pipeline]\nqueue_capacity = \"lots\"")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("pipeline.queue_capacity: invalid type: found string \"lots\""),
        "{e}"
    );
    let e = UsageConfig::from_toml("[pipeline]\nflush_interval = \"soon\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("pipeline.flush_interval") && e.contains("\"soon\""), "{e}");
    let e = UsageConfig::from_toml("[pipeline]\nqueue_capacty = 1")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field") && e.contains("queue_capacty"), "{e}");
    let e = UsageConfig::from_toml("[exporters.a]\nevents=[\"x\"]")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "exporters.a.type: is missing");
    let e = UsageConfig::from_toml("[exporters.a]\ntype=\"file\"\nflush_interval=\"x\"")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("exporters.a.flush_interval: invalid duration \"x\""),
        "{e}"
    );
    let e = UsageConfig::from_toml("[pipeline]\nbatch_max_events = 0")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "pipeline.batch_max_events: must be greater than 0");
}

#[test]
#[allow(clippy::result_large_err)] // figment::Jail's signature
fn env_overrides_file_with_double_underscore_nesting() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "custom.toml",
            "[pipeline]\nqueue_capacity = 10\nservice_name = \"file\"",
        )?;
        jail.set_env("USAGE_CONFIG", "custom.toml");
        jail.set_env("USAGE_PIPELINE__QUEUE_CAPACITY", "20");
        jail.set_env("USAGE_EXPORTERS__MY_HTTP__TYPE", "http");
        jail.set_env("USAGE_EXPORTERS__MY_HTTP__URL", "http://x");
        let c = UsageConfig::load().map_err(|e| e.to_string())?;
        assert_eq!(c.pipeline.queue_capacity, 20);
        assert_eq!(c.pipeline.service_name, "file");
        assert_eq!(c.exporters[0].name, "my_http");
        assert_eq!(c.exporters[0].type_name, "http");
        jail.set_env("USAGE_LOG", "debug");
        jail.set_env("USAGE_SOMETHING_ELSE", "x");
        assert_eq!(
            UsageConfig::load().map_err(|e| e.to_string())?.pipeline.queue_capacity,
            20,
            "other USAGE_ vars are not keys"
        );
        jail.set_env("USAGE_PIPELINE__QUEUE_CAPACITY", "many");
        let e = UsageConfig::load().unwrap_err().to_string();
        assert!(
            e.contains("pipeline.queue_capacity") && e.contains("USAGE_PIPELINE__QUEUE_CAPACITY"),
            "{e}"
        );
        Ok(())
    });
}

#[test]
#[allow(clippy::result_large_err)] // figment::Jail's signature
fn the_default_file_is_optional() {
    figment::Jail::expect_with(|_jail| {
        let c = UsageConfig::load().map_err(|e| e.to_string())?;
        assert!(c.exporters.is_empty());
        Ok(())
    });
}

#[test]
fn explicit_config_path_must_exist() {
    let e = UsageConfig::load_file(Path::new("/nonexistent/usage.toml"), true).unwrap_err();
    assert_eq!(e.to_string(), "config file /nonexistent/usage.toml does not exist");
}

#[test]
fn debug_redacts_secret_looking_keys_at_any_depth() {
    let c = UsageConfig::from_toml(
        r#"
        [exporters.k]
        type = "kafka"
        topic = "t"
        api_key = "sk_1"
        [exporters.k.librdkafka]
        "sasl.password" = "pw_2"
        "client.id" = "visible"
        "#,
    )
    .unwrap();
    let d = format!("{c:?}");
    assert!(!d.contains("sk_1") && !d.contains("pw_2"), "{d}");
    assert!(
        d.contains(
            r#"settings: {"api_key": ***, "librdkafka": {"client.id": "visible", "sasl.password": ***}, "topic": "t"}"#
        ),
        "{d}"
    );
}

#[test]
fn option_keys_match_the_struct() {
    let mut d = Dict::new();
    for k in OPTION_KEYS {
        let v: Value = match k {
            "events" => vec!["a".to_string()].into(),
            "enabled" => true.into(),
            "batch_max_events" | "queue_max_events" | "batches_in_flight" => 1u64.into(),
            "batch_max_bytes" | "queue_max_bytes" => "1KiB".into(),
            _ => "1s".into(),
        };
        d.insert(k.to_string(), v);
    }
    let o: ExporterOptions = Value::from(d).deserialize().unwrap();
    assert!(
        o.queue_max_bytes.is_some()
            && o.probe_interval.is_some()
            && o.enabled.is_some()
            && o.batches_in_flight.is_some()
    );
}

#[test]
fn misspelt_keys_sections_and_values_suggest_the_right_one() {
    let e = UsageConfig::from_toml("[pipeline]\nqueue_capacty = 1")
        .unwrap_err()
        .to_string();
    assert!(e.contains("did you mean `queue_capacity`?"), "{e}");
    let e = UsageConfig::from_toml("[pipeline]\nfull_policy = \"drop_newset\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("did you mean `drop_newest`?"), "{e}");
    // An exporter's own keys and the common options both count.
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Own {
        bucket: String,
    }
    let c = UsageConfig::from_toml("[exporters.a]\ntype = \"s3\"\nbucket = \"b\"\nflush_intreval = \"1s\"\n").unwrap();
    let e = c.exporters[0].parse::<Own>().unwrap_err().to_string();
    assert!(
        e.starts_with("exporters.a.flush_intreval") || e.contains("flush_intreval"),
        "{e}"
    );
    assert!(e.contains("did you mean `flush_interval`?"), "{e}");
    let c = UsageConfig::from_toml("[exporters.a]\ntype = \"s3\"\nbuckt = \"b\"\n").unwrap();
    let e = c.exporters[0].parse::<Own>().unwrap_err().to_string();
    assert!(e.contains("did you mean `bucket`?"), "{e}");
    let vars = |name: &str| vec![(std::ffi::OsString::from(name), std::ffi::OsString::from("1"))].into_iter();
    let e = check_env_sections(vars("USAGE_PIPELNE__QUEUE_CAPACITY"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("USAGE_PIPELNE__QUEUE_CAPACITY") && e.contains("did you mean `pipeline`?"),
        "{e}"
    );
    assert!(check_env_sections(vars("USAGE_PIPELINE__QUEUE_CAPACITY")).is_ok());
    assert!(check_env_sections(vars("USAGE_CONFIG")).is_ok(), "not a config key");
}
