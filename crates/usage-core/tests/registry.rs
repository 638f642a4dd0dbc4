//! Building pipelines from config through the exporter registry.

use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use usage_core::{
    async_trait, Batch, ExportError, Exporter, ExporterContext, ExporterDefaults, ExporterFactory, Pipeline,
    RelayUsage, Secret, UsageConfig,
};

static SEEN: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryConfig {
    label: String,
    api_key: Option<Secret>,
}

struct Memory {
    label: String,
}

#[async_trait]
impl Exporter for Memory {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let mut seen = SEEN.lock().unwrap();
        for e in batch.iter() {
            let cu = match e.field("cu") {
                Some(usage_core::Value::U64(cu)) => cu,
                _ => 0,
            };
            seen.push((self.label.clone(), cu));
        }
        Ok(())
    }
}

fn build(ctx: &ExporterContext) -> Result<Box<dyn Exporter>, usage_core::ConfigError> {
    let cfg: MemoryConfig = ctx.section.parse()?;
    if let Some(k) = &cfg.api_key {
        k.expose()
            .map_err(|e| usage_core::ConfigError::key(format!("exporters.{}.api_key", ctx.section.name), e))?;
    }
    Ok(Box::new(Memory { label: cfg.label }))
}

pub static MEMORY: ExporterFactory = ExporterFactory {
    type_name: "memory",
    description: "keeps events in memory (test)",
    build,
    defaults: ExporterDefaults::NONE,
    enabled_by_default: usage_core::registry::always_enabled,
    check: usage_core::registry::accepts_any,
};
usage_core::register_exporter!(MEMORY);

#[test]
fn config_chooses_registered_exporters_by_type() {
    let cfg = UsageConfig::from_toml(
        r#"
        [pipeline]
        flush_interval = "10ms"
        data_dir = "target/test-registry"
        [exporters.a]
        type = "memory"
        label = "first"
        events = ["relay_usage"]
        [exporters.b]
        type = "memory"
        label = "second"
        api_key = "sk_live_not_in_debug"
        "#,
    )
    .unwrap();
    assert!(!format!("{cfg:?}").contains("sk_live"), "secrets never show in Debug");
    let p = Pipeline::from_config(&cfg).unwrap();
    assert_eq!(p.exporter_names(), vec!["a", "b"]);
    p.sink().emit(RelayUsage {
        cu: 7,
        ..Default::default()
    });
    let r = p.shutdown_blocking(Duration::from_secs(5)).unwrap();
    assert_eq!(r.exporter("a").unwrap().delivered, 1);
    let mut seen = SEEN.lock().unwrap().clone();
    seen.sort();
    assert!(seen.contains(&("first".into(), 7)) && seen.contains(&("second".into(), 7)));
}

#[test]
fn unknown_type_lists_registered_types_and_how_to_link() {
    let cfg = UsageConfig::from_toml("[exporters.main]\ntype = \"kafkaa\"").unwrap();
    let e = Pipeline::from_config(&cfg).unwrap_err().to_string();
    assert!(
        e.starts_with("exporters.main.type: unknown exporter type `kafkaa`; registered types: "),
        "{e}"
    );
    assert!(e.contains("memory"), "{e}");
    assert!(e.contains("link_exporters!"), "{e}");
}

#[test]
fn exporter_keys_are_checked_by_the_factory_with_full_paths() {
    let cfg = UsageConfig::from_toml("[exporters.m]\ntype = \"memory\"\nlabel = \"x\"\nlabell = 1").unwrap();
    let e = Pipeline::from_config(&cfg).unwrap_err().to_string();
    assert!(
        e.starts_with("exporters.m") && e.contains("unknown field") && e.contains("labell"),
        "{e}"
    );
    let cfg =
        UsageConfig::from_toml("[exporters.m]\ntype = \"memory\"\nlabel = \"x\"\nevents = [\"relay_usag\"]").unwrap();
    let e = Pipeline::from_config(&cfg).unwrap_err().to_string();
    assert!(
        e.starts_with("exporters.m.events: unknown event kind `relay_usag`; known kinds: "),
        "{e}"
    );
    let cfg = UsageConfig::from_toml(
        "[exporters.m]\ntype = \"memory\"\nlabel = \"x\"\napi_key = { env = \"USAGE_TEST_UNSET_KEY_VAR\" }",
    )
    .unwrap();
    let e = Pipeline::from_config(&cfg).unwrap_err().to_string();
    assert_eq!(
        e,
        "exporters.m.api_key: environment variable USAGE_TEST_UNSET_KEY_VAR is not set (or not UTF-8)"
    );
}

#[test]
fn explicit_linking_registers_once() {
    usage_core::registry::link(&[exported_factory()]);
    usage_core::registry::link(&[exported_factory()]);
    let n = usage_core::registry::registered_exporters()
        .iter()
        .filter(|f| f.type_name == "memory")
        .count();
    assert_eq!(n, 1);
}

fn exported_factory() -> &'static ExporterFactory {
    exporter_factory()
}

#[test]
fn disabled_pipeline_is_a_noop_sink() {
    let cfg = UsageConfig::from_toml("[pipeline]\nenabled = false").unwrap();
    let p = Pipeline::from_config(&cfg).unwrap();
    assert!(!p.sink().is_enabled());
    p.sink().emit(RelayUsage::default());
    assert!(p.shutdown_blocking(Duration::from_secs(1)).is_ok());
    let _shared: Arc<Pipeline> = Arc::new(p);
}
