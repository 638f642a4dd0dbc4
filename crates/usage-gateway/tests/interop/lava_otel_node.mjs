// Lava's usage sink re-created with Node's OpenTelemetry SDK (a second client we did not
// write; its OTLP/HTTP exporter sends OTLP/JSON): Lava's resource and attribute types,
// both kinds through one batch processor, no event id. Writes what it sent as JSON.
//
// usage: node lava_otel_node.mjs ENDPOINT KEY OUT.json RELAYS QOS BAD
import { writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { LoggerProvider, BatchLogRecordProcessor } from "@opentelemetry/sdk-logs";
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";

const [endpoint, key, out, relays, qos, bad] = process.argv.slice(2);
const [nRelays, nQos, nBad] = [Number(relays), Number(qos), Number(bad)];
const exporter = new OTLPLogExporter({ url: endpoint, headers: { authorization: `Bearer ${key}` } });
const provider = new LoggerProvider({
  resource: resourceFromAttributes({
    "service.name": "lava-rpcsmartrouter",
    "service.instance.id": `${hostname()}-${process.pid}`,
  }),
  processors: [
    new BatchLogRecordProcessor({ exporter, maxQueueSize: 50000, maxExportBatchSize: 1000, scheduledDelayMillis: 500 }),
  ],
});
const logger = provider.getLogger("lava-usage");
const every = Math.max(1, Math.floor(nRelays / Math.max(nQos, 1)));
let cuSum = 0;
let qosSent = 0;
const base = Date.now();
for (let n = 0; n < nRelays + nBad; n++) {
  const cu = 1 + (n % 40);
  const attributes = {
    project: `proj-${String(n % 20).padStart(2, "0")}`,
    chain: n % 3 ? "ETH1" : "LAV1",
    api_interface: "jsonrpc",
    api_method: n % 5 ? "eth_call" : "eth_getBlockByNumber",
    cu,
    latency_ms: n,
    success: n % 11 !== 0,
    cache_hit: n % 7 === 0,
    is_write: false,
    is_archive: n % 13 === 0,
    is_batch: false,
    is_debug_trace: false,
    hedge_count: n % 2,
    provider: `lava@provider${n % 4}`,
    origin: "",
  };
  if (n >= nRelays) delete attributes.cu;
  else cuSum += cu;
  // HrTime [seconds, nanoseconds]: every record its own nanosecond.
  const ts = [Math.floor(base / 1000), (base % 1000) * 1e6 + n];
  logger.emit({ timestamp: ts, body: "relay_usage", attributes });
  if (qosSent < nQos && n % every === 0) {
    qosSent++;
    logger.emit({
      timestamp: ts,
      body: "optimizer_qos",
      attributes: {
        provider: `lava@provider${n % 4}`,
        consumer_hostname: hostname(),
        consumer_pub_address: "lava@consumer",
        chain_id: "ETH1",
        epoch: 1234,
        entry_index: n % 4,
        geo_location: 1,
        provider_stake: 5000000 + n,
        selection_availability: 0.9,
        selection_latency: 0.5,
        selection_sync: 0.75,
        selection_stake: 0.25,
        selection_composite: 0.6,
        availability_contribution: 0.3,
        latency_contribution: 0.15,
        sync_contribution: 0.1,
        stake_contribution: 0.05,
      },
    });
  }
}
await provider.forceFlush();
await provider.shutdown();
writeFileSync(out, JSON.stringify({ relays: nRelays, qos: nQos, bad: nBad, cu_sum: cuSum, flushed: true }));
