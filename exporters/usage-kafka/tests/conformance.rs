//! The shared conformance suite against a real Kafka-protocol broker (tansu, started
//! by `cargo xtask e2e`). tansu keeps data in memory, so the outage is a network
//! outage: its advertised address is a pausable proxy.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, TopicPartitionList};
use std::time::{Duration, Instant};
use usage_conformance::{env_addr, record, run, scratch_dir, Backend, TcpProxy};
use usage_core::json::Decoder;
use usage_core::Event;

struct Tansu {
    proxy: TcpProxy,
    brokers: String,
}

impl Tansu {
    fn consume(&self, topic: &str, until: usize, out: &mut Vec<Event>) -> Result<(), String> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", "usage-conformance")
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| e.to_string())?;
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        let partitions = md.topics().first().map_or(0, |t| t.partitions().len());
        if partitions == 0 {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
                .map_err(|e| e.to_string())?;
        }
        consumer.assign(&tpl).map_err(|e| e.to_string())?;
        let decoder = Decoder::default().require_id(true);
        let end = Instant::now() + Duration::from_secs(30);
        // tansu 0.6's high watermark undercounts multi-record batches, so read until
        // the topic is quiet rather than up to the watermark.
        let mut quiet = Instant::now();
        while quiet.elapsed() < Duration::from_secs(1) && out.len() < until * 4 && Instant::now() < end {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    quiet = Instant::now();
                    let e = decoder
                        .decode(m.payload().unwrap_or_default())
                        .map_err(|e| format!("{topic}: {e}"))?;
                    out.push(e);
                }
                Some(Err(e)) => return Err(format!("consume {topic}: {e}")),
                None => {}
            }
        }
        Ok(())
    }
}

impl Backend for Tansu {
    fn name(&self) -> String {
        "tansu 0.6".into()
    }
    fn exporter_type(&self) -> String {
        "kafka".into()
    }
    fn exporter_settings(&self, run: &str) -> String {
        format!(
            "brokers = {:?}\ntopic = \"conf-{run}.{{kind}}\"\nkey = \"id\"\n",
            self.brokers
        )
    }
    fn read_back(&self, run: &str, expected: usize) -> Result<Vec<Event>, String> {
        let mut out = Vec::new();
        for kind in ["relay_usage", "network_event", "optimizer_qos"] {
            self.consume(&format!("conf-{run}.{kind}"), expected, &mut out)?;
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
    };
    let scratch = scratch_dir("conformance-kafka");
    let reports = run(&mut backend, &scratch, 3000).unwrap_or_else(|e| panic!("kafka: {e}"));
    record(&reports);
}
