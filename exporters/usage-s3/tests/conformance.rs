//! The shared conformance suite against real S3-compatible servers started by
//! `cargo xtask e2e`: moto (in memory, so its outage is a paused proxy), moto with
//! IAM authentication on (checks signatures and conditional writes; `signed`), and,
//! when installed, s3s-fs (checks signatures, persists to disk, so it is really
//! killed and restarted).

#[path = "conformance/signed.rs"]
mod signed;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::Client;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use usage_conformance::{env_addr, record, run, scratch_dir, Backend, TcpProxy};
use usage_core::json::Decoder;
use usage_core::Event;
use usage_file::encode::decompress;
use usage_file::Compression;

enum Outage {
    /// Not stopped by the tests that use it.
    None,
    Proxy(TcpProxy),
    /// (command line, running child, port) of a server that really restarts.
    Process(Vec<String>, Option<Child>, u16),
}

struct S3Store {
    name: String,
    endpoint: String,
    bucket: String,
    keys: (String, String),
    outage: Outage,
    rt: tokio::runtime::Runtime,
}

impl S3Store {
    fn client(&self) -> Client {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(&self.keys.0, &self.keys.1, None, None, "test"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
            .build();
        Client::from_conf(conf)
    }

    fn create_bucket(&self) {
        let c = self.client();
        let bucket = self.bucket.clone();
        let _ = self
            .rt
            .block_on(async move { c.create_bucket().bucket(bucket).send().await });
    }
}

impl Backend for S3Store {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn exporter_type(&self) -> String {
        "s3".into()
    }
    fn exporter_settings(&self, run: &str) -> String {
        format!(
            "bucket = {:?}\nprefix = \"conf-{run}/{{kind}}\"\nendpoint = {:?}\naccess_key_id = {:?}\nsecret_access_key = {:?}\n",
            self.bucket, self.endpoint, self.keys.0, self.keys.1
        )
    }
    fn read_back(&self, run: &str, _expected: usize) -> Result<Vec<Event>, String> {
        let c = self.client();
        let bucket = self.bucket.clone();
        let prefix = format!("conf-{run}/");
        self.rt.block_on(async move {
            let mut out = Vec::new();
            let mut token = None;
            let decoder = Decoder::default().require_id(true);
            loop {
                let page = c
                    .list_objects_v2()
                    .bucket(&bucket)
                    .prefix(&prefix)
                    .set_continuation_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| format!("list: {e:?}"))?;
                for obj in page.contents() {
                    let key = obj.key().unwrap_or_default();
                    if !key.ends_with(".ndjson.gz") || !key.contains("/year=") {
                        return Err(format!("unexpected object {key}"));
                    }
                    let body = c
                        .get_object()
                        .bucket(&bucket)
                        .key(key)
                        .send()
                        .await
                        .map_err(|e| format!("get {key}: {e:?}"))?;
                    let bytes = body.body.collect().await.map_err(|e| e.to_string())?.into_bytes();
                    let raw = decompress(&bytes, Compression::Gzip).map_err(|e| format!("{key}: {e}"))?;
                    for line in raw.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        out.push(decoder.decode(line).map_err(|e| format!("{key}: {e}"))?);
                    }
                }
                token = page.next_continuation_token().map(String::from);
                if token.is_none() {
                    return Ok(out);
                }
            }
        })
    }
    fn stop(&mut self) -> Result<(), String> {
        match &mut self.outage {
            Outage::None => return Err("this store is not stopped".into()),
            Outage::Proxy(p) => p.pause(),
            Outage::Process(_, child, _) => {
                if let Some(mut c) = child.take() {
                    c.kill().map_err(|e| e.to_string())?;
                    let _ = c.wait();
                }
            }
        }
        Ok(())
    }
    fn start(&mut self) -> Result<(), String> {
        match &mut self.outage {
            Outage::None => {}
            Outage::Proxy(p) => p.resume(),
            Outage::Process(cmd, child, port) => {
                *child = Some(spawn(cmd)?);
                wait_port(*port)?;
            }
        }
        Ok(())
    }
}

fn spawn(cmd: &[String]) -> Result<Child, String> {
    Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start {}: {e}", cmd[0]))
}

fn wait_port(port: u16) -> Result<(), String> {
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < end {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("nothing listening on {port}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
#[ignore = "e2e: run by `cargo xtask e2e`"]
fn s3_exporter_passes_the_conformance_suite_against_moto() {
    usage_core::link_exporters!(usage_s3);
    let upstream = env_addr("USAGE_E2E_MOTO").parse().expect("address");
    let proxy = TcpProxy::start(0, upstream).expect("proxy");
    let mut store = S3Store {
        name: "moto".into(),
        endpoint: format!("http://127.0.0.1:{}", proxy.port()),
        bucket: "usage-conformance".into(),
        // moto takes any keys; MinIO (`cargo xtask e2e --compose`) passes its own.
        keys: std::env::var("USAGE_E2E_S3_KEYS")
            .ok()
            .and_then(|k| k.split_once(':').map(|(a, b)| (a.to_string(), b.to_string())))
            .unwrap_or(("AKIAEXAMPLE".into(), "secret".into())),
        outage: Outage::Proxy(proxy),
        rt: runtime(),
    };
    store.create_bucket();
    let reports = run(&mut store, &scratch_dir("conformance-s3-moto"), 3000).unwrap_or_else(|e| panic!("s3/moto: {e}"));
    record(&reports);
}

#[test]
#[ignore = "e2e: run by `cargo xtask e2e`"]
fn s3_exporter_passes_the_conformance_suite_against_s3s_fs() {
    usage_core::link_exporters!(usage_s3);
    let Ok(bin) = std::env::var("USAGE_E2E_S3S_BIN") else {
        eprintln!("s3s-fs is not installed: skipped (cargo install s3s-fs@0.14.1 --locked --features binary)");
        return;
    };
    let port: u16 = env_addr("USAGE_E2E_S3S_PORT").parse().expect("port");
    let dir = scratch_dir("s3s-fs-data");
    let cmd: Vec<String> = vec![
        bin,
        "--host".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string(),
        "--access-key".into(),
        "AKIAS3S".into(),
        "--secret-key".into(),
        "s3s-secret".into(),
        dir.display().to_string(),
    ];
    let child = spawn(&cmd).expect("s3s-fs");
    wait_port(port).expect("s3s-fs ready");
    let mut store = S3Store {
        name: "s3s-fs (signed)".into(),
        endpoint: format!("http://127.0.0.1:{port}"),
        bucket: "usage-conformance".into(),
        keys: ("AKIAS3S".into(), "s3s-secret".into()),
        outage: Outage::Process(cmd, Some(child), port),
        rt: runtime(),
    };
    store.create_bucket();
    let result = run(&mut store, &scratch_dir("conformance-s3-s3s"), 3000);
    let _ = store.stop();
    record(&result.unwrap_or_else(|e| panic!("s3/s3s-fs: {e}")));
}
