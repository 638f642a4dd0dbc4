//! The shared conformance suite through http exporter -> `usage gateway` (a real
//! process) -> Kafka (tansu), both started for `cargo xtask e2e`. The gateway has a
//! spool, so the outage is a real kill and restart of the gateway: events it
//! answered 202 for are delivered after it comes back.

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use usage_conformance::{env_addr, free_port, record, run, scratch_dir, Backend, Server};
use usage_core::Event;

struct ViaGateway {
    usage_bin: String,
    brokers: String,
    dir: std::path::PathBuf,
    port: u16,
    run: Mutex<Option<String>>,
    server: Mutex<Option<Server>>,
}

impl ViaGateway {
    fn config(&self, run: &str) -> std::path::PathBuf {
        let d = self.dir.join(run);
        let _ = std::fs::create_dir_all(&d);
        let path = d.join("gateway.toml");
        let toml = format!(
            "[pipeline]\nflush_interval = \"50ms\"\nretry_base = \"50ms\"\nretry_max = \"500ms\"\ndata_dir = {data:?}\n\
             [spool]\npath = {spool:?}\n\
             [gateway]\nlisten = \"127.0.0.1:{port}\"\n[[gateway.keys]]\nkey = \"e2e-key\"\n\
             [exporters.kafka]\ntype = \"kafka\"\nbrokers = {brokers:?}\ntopic = \"gw-{run}.{{kind}}\"\n",
            data = d.join("data").display().to_string(),
            spool = d.join("spool").display().to_string(),
            port = self.port,
            brokers = self.brokers,
        );
        std::fs::write(&path, toml).expect("gateway config");
        path
    }

    fn spawn(&self, run: &str) -> Result<(), String> {
        let config = self.config(run);
        let mut command = Command::new(&self.usage_bin);
        command
            .args(["gateway", "--config", &config.display().to_string(), "--drain", "5s"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join(run).join("gateway.log")).map_err(|e| e.to_string())?);
        let server = Server::start("usage gateway", &mut command, self.port, Duration::from_secs(30))?;
        *self.server.lock().unwrap() = Some(server);
        *self.run.lock().unwrap() = Some(run.to_string());
        Ok(())
    }

    fn kill(&self) {
        // A kill, not a stop: what it acknowledged must survive in its spool.
        drop(self.server.lock().unwrap().take());
    }
}

impl Drop for ViaGateway {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Backend for ViaGateway {
    fn name(&self) -> String {
        "usage gateway -> tansu".into()
    }
    fn exporter_type(&self) -> String {
        "http".into()
    }
    fn exporter_settings(&self, run: &str) -> String {
        // A gateway of its own per run, writing to that run's topics.
        self.kill();
        self.spawn(run).expect("gateway");
        format!(
            "url = \"http://127.0.0.1:{}/v1/metrics\"\nkey = \"e2e-key\"\n",
            self.port
        )
    }
    fn read_back(&self, run: &str, expected: usize) -> Result<Vec<Event>, String> {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            let mut out = Vec::new();
            for kind in ["relay_usage", "network_event", "optimizer_qos"] {
                let topic = format!("gw-{run}.{kind}");
                out.extend(usage_kafka::read::read_events(
                    &self.brokers,
                    &topic,
                    Duration::from_millis(700),
                    Duration::from_secs(30),
                )?);
            }
            // The gateway forwards asynchronously after its 202: wait for it to catch up.
            if out.len() >= expected || Instant::now() > end {
                return Ok(out);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    fn stop(&mut self) -> Result<(), String> {
        self.kill();
        Ok(())
    }
    fn start(&mut self) -> Result<(), String> {
        let run = self.run.lock().unwrap().clone().ok_or("no run")?;
        self.spawn(&run)
    }
}

#[test]
#[ignore = "e2e: run by `cargo xtask e2e`"]
fn http_exporter_through_the_gateway_to_kafka_passes_the_conformance_suite() {
    usage_core::link_exporters!(usage_http);
    // tansu advertises the proxy's address: clients (the gateway, our reader) go through it.
    let upstream = env_addr("USAGE_E2E_KAFKA_UPSTREAM").parse().expect("address");
    let proxy_port: u16 = env_addr("USAGE_E2E_KAFKA_PROXY_PORT").parse().expect("port");
    let proxy = usage_conformance::TcpProxy::start(proxy_port, upstream).expect("proxy");
    let port = free_port();
    let mut backend = ViaGateway {
        usage_bin: env_addr("USAGE_E2E_USAGE_BIN"),
        brokers: format!("127.0.0.1:{}", proxy.port()),
        dir: scratch_dir("conformance-gateway"),
        port,
        run: Mutex::new(None),
        server: Mutex::new(None),
    };
    let reports = run(&mut backend, &scratch_dir("conformance-http"), 3000).unwrap_or_else(|e| panic!("http: {e}"));
    record(&reports);
}
