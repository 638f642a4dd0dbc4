//! The shared conformance suite against a real Kafka-protocol broker (tansu, started
//! by `cargo xtask e2e`). tansu keeps data in memory, so the outage is a network
//! outage: its advertised address is a pausable proxy. It runs twice: one message
//! per event, then packed (`events_per_message = 500`).

use std::time::Duration;
use usage_conformance::{env_addr, record, run, scratch_dir, Backend, TcpProxy};
use usage_core::Event;

struct Tansu {
    proxy: TcpProxy,
    brokers: String,
    /// `events_per_message`: 1 is one message per event.
    per_message: usize,
}

impl Backend for Tansu {
    fn name(&self) -> String {
        if self.per_message > 1 {
            format!("tansu 0.6, packed x{}", self.per_message)
        } else {
            "tansu 0.6".into()
        }
    }
    fn exporter_type(&self) -> String {
        "kafka".into()
    }
    fn exporter_settings(&self, run: &str) -> String {
        format!(
            "brokers = {:?}\ntopic = \"conf-{run}.{{kind}}\"\nkey = \"id\"\nevents_per_message = {}\n",
            self.brokers, self.per_message
        )
    }
    fn read_back(&self, run: &str, expected: usize) -> Result<Vec<Event>, String> {
        let _ = expected;
        let mut out = Vec::new();
        for kind in ["relay_usage", "network_event", "optimizer_qos"] {
            let topic = format!("conf-{run}.{kind}");
            out.extend(usage_kafka::read::read_events(
                &self.brokers,
                &topic,
                Duration::from_secs(1),
                Duration::from_secs(30),
            )?);
        }
        Ok(out)
    }
    fn stop(&mut self) -> Result<(), String> {
        self.proxy.pause();
        Ok(())
    }
    fn start(&mut self) -> Result<(), String> {
        self.proxy.resume();
        Ok(())
    }
}

#[test]
#[ignore = "e2e: run by `cargo xtask e2e`"]
fn kafka_exporter_passes_the_conformance_suite_against_tansu() {
    usage_core::link_exporters!(usage_kafka);
    let upstream = env_addr("USAGE_E2E_KAFKA_UPSTREAM").parse().expect("address");
    let port: u16 = env_addr("USAGE_E2E_KAFKA_PROXY_PORT").parse().expect("port");
    let proxy = TcpProxy::start(port, upstream).expect("proxy");
    let mut backend = Tansu {
        brokers: format!("127.0.0.1:{}", proxy.port()),
        proxy,
        per_message: 1,
    };
    let scratch = scratch_dir("conformance-kafka");
    let reports = run(&mut backend, &scratch, 3000).unwrap_or_else(|e| panic!("kafka: {e}"));
    record(&reports);
    // Packed into NDJSON messages: the same suite, through the same proxy (one port).
    backend.per_message = 500;
    let reports = run(&mut backend, &scratch, 3000).unwrap_or_else(|e| panic!("kafka, packed: {e}"));
    record(&reports);
}
