//! `config_only_host`: a host that links every exporter crate and picks its
//! destinations only from `usage.toml` (or `$USAGE_CONFIG`) and `USAGE_...`
//! environment variables. Changing destinations is a config change, never a
//! rebuild: see `examples/config_only_host/README.md`.

use std::time::Duration;
use usage_core::{Pipeline, RelayUsage, UsageConfig};

/// Every exporter crate this host can use. Linking is what registers them; the
/// config decides which run.
fn link_all() {
    usage::link_exporters();
}

/// Loads the config, sends `n` demo events where it says, and reports.
fn run(n: u64) -> Result<usage_core::DeliveryReport, Box<dyn std::error::Error>> {
    link_all();
    let config = UsageConfig::load()?;
    for e in &config.exporters {
        println!("exporter `{}` of type `{}`", e.name, e.type_name);
    }
    let pipeline = Pipeline::from_config(&config)?;
    for i in 0..n {
        pipeline.sink().emit(RelayUsage {
            project: "acme".into(),
            chain: "ETH1".into(),
            api_method: "eth_call".into(),
            cu: 20,
            latency_ms: 10 + i % 7,
            success: true,
            ..Default::default()
        });
    }
    Ok(pipeline.shutdown_blocking(Duration::from_secs(30))?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let report = run(100)?;
    println!("{report:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    /// This test binary, re-run as a child with only a config file and env vars
    /// (the way an operator changes a deployed host).
    fn host(env: &[(&str, String)]) -> String {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "tests::child_host",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CONFIG_ONLY_HOST_CHILD", "1")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        text
    }

    #[test]
    #[ignore = "run as a child process by the other tests"]
    fn child_host() {
        if std::env::var_os("CONFIG_ONLY_HOST_CHILD").is_none() {
            return;
        }
        let report = run(25).unwrap();
        assert_eq!(report.exporter("main").map(|e| e.delivered), Some(25));
    }

    fn count(dir: &Path) -> usize {
        let mut n = 0;
        usage_file::read::scan(dir, &Default::default(), |_| n += 1).unwrap();
        n
    }

    #[test]
    fn destinations_change_with_the_config_file_and_env_alone() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let file_toml = dir.path().join("usage.toml");
        std::fs::write(
            &file_toml,
            format!("[pipeline]\ndata_dir = \"{d}/data\"\n[exporters.main]\ntype = \"file\"\npath = \"{d}/a\"\n"),
        )
        .unwrap();
        let config = ("USAGE_CONFIG", file_toml.display().to_string());

        // 1. As configured.
        let out = host(std::slice::from_ref(&config));
        assert!(out.contains("exporter `main` of type `file`"), "{out}");
        assert_eq!(count(&dir.path().join("a")), 25);

        // 2. An env var moves it, same binary.
        host(&[config.clone(), ("USAGE_EXPORTERS__MAIN__PATH", format!("{d}/b"))]);
        assert_eq!(count(&dir.path().join("b")), 25);
        assert_eq!(count(&dir.path().join("a")), 25, "nothing more went to the old place");

        // 3. Another exporter type entirely, from another config file: the http
        //    exporter to a metrics API (a gateway here), still no rebuild.
        let rt = tokio::runtime::Runtime::new().unwrap();
        let gw_toml = format!(
            "[pipeline]\ndata_dir = \"{d}/gw-data\"\n[exporters.out]\ntype = \"file\"\npath = \"{d}/gw\"\n\
             [[gateway.keys]]\nkey = \"host-key\"\n"
        );
        usage_core::link_exporters!(usage_file);
        let gateway = usage_gateway::Gateway::new(&UsageConfig::from_toml(&gw_toml).unwrap()).unwrap();
        let url = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/v1/metrics", listener.local_addr().unwrap());
            let app = usage_gateway::router(gateway.clone());
            tokio::spawn(async move { axum::serve(listener, app).await });
            url
        });
        let http_toml = dir.path().join("http.toml");
        std::fs::write(
            &http_toml,
            format!(
                "[pipeline]\ndata_dir = \"{d}/data\"\n[exporters.main]\ntype = \"http\"\nurl = \"{url}\"\n\
                 key = {{ env = \"METRICS_KEY\" }}\n"
            ),
        )
        .unwrap();
        let out = host(&[
            ("USAGE_CONFIG", http_toml.display().to_string()),
            ("METRICS_KEY", "host-key".into()),
        ]);
        assert!(out.contains("exporter `main` of type `http`"), "{out}");
        assert!(!out.contains("host-key"), "the key never shows");
        rt.block_on(gateway.pipeline().flush(Duration::from_secs(10))).unwrap();
        assert_eq!(count(&dir.path().join("gw")), 25);
    }
}
