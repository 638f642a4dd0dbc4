"""Lava's usage sink, re-created with the Python OpenTelemetry SDK (a client we did not
write): one BatchProcessor for both kinds, Lava's resource and attribute types exactly
(shared/interop.md), no event id. Writes what it sent as JSON for the checker.

usage: lava_otel_sdk.py ENDPOINT OUT.json RELAYS QOS BAD
  ENDPOINT  OTLP/HTTP logs URL (…/v1/logs), or with LAVA_OTLP_PROTOCOL=grpc the
            OTLP/gRPC endpoint (http://host:port, sent without TLS)
  RELAYS    valid relay_usage records (latency_ms carries a serial, unique per record)
  QOS       optimizer_qos samples, interleaved with the relays
  BAD       relay_usage records without `cu` (the gateway must reject and keep them)
"""

import json
import os
import socket
import sys
import time

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource


def main():
    endpoint, out, relays, qos, bad = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    resource = Resource.create(
        {"service.name": "lava-rpcconsumer", "service.instance.id": f"{socket.gethostname()}-{os.getpid()}"}
    )
    provider = LoggerProvider(resource=resource)
    if os.environ.get("LAVA_OTLP_PROTOCOL") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        exporter = OTLPLogExporter(endpoint=endpoint, insecure=True, timeout=10)
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        exporter = OTLPLogExporter(endpoint=endpoint, timeout=10)
    # Lava's settings: queue 50,000, batch 1,000, every 500 ms.
    provider.add_log_record_processor(
        BatchLogRecordProcessor(exporter, max_queue_size=50_000, max_export_batch_size=1_000, schedule_delay_millis=500)
    )
    logger = provider.get_logger("lava-usage")
    projects = [f"proj-{i:02d}" for i in range(20)]
    cu_sum, qos_sent = 0, 0
    every = max(1, relays // max(qos, 1))
    base = time.time_ns()
    for n in range(relays + bad):
        is_bad = n >= relays
        cu = 1 + n % 40
        attrs = {
            "project": projects[n % len(projects)],
            "chain": "ETH1" if n % 3 else "LAV1",
            "api_interface": "jsonrpc",
            "api_method": "eth_call" if n % 5 else "eth_getBlockByNumber",
            "cu": cu,
            "latency_ms": n,
            "success": n % 11 != 0,
            "cache_hit": n % 7 == 0,
            "is_write": False,
            "is_archive": n % 13 == 0,
            "is_batch": False,
            "is_debug_trace": False,
            "hedge_count": n % 2,
            "provider": f"lava@provider{n % 4}",
            "origin": "",
        }
        if is_bad:
            del attrs["cu"]
        else:
            cu_sum += cu
        logger.emit(timestamp=base + n, body="relay_usage", attributes=attrs)
        if qos_sent < qos and n % every == 0:
            qos_sent += 1
            logger.emit(
                timestamp=base + n,
                body="optimizer_qos",
                attributes={
                    "provider": f"lava@provider{n % 4}",
                    "consumer_hostname": socket.gethostname(),
                    "consumer_pub_address": "lava@consumer",
                    "chain_id": "ETH1",
                    "epoch": 1234,
                    "entry_index": n % 4,
                    "geo_location": 1,
                    "provider_stake": 5_000_000 + n,
                    "selection_availability": 0.9,
                    "selection_latency": 0.5,
                    "selection_sync": 0.75,
                    "selection_stake": 0.25,
                    "selection_composite": 0.6,
                    "availability_contribution": 0.3,
                    "latency_contribution": 0.15,
                    "sync_contribution": 0.1,
                    "stake_contribution": 0.05,
                },
            )
    ok = provider.force_flush(timeout_millis=120_000)
    provider.shutdown()
    with open(out, "w") as f:
        json.dump({"relays": relays, "qos": qos, "bad": bad, "cu_sum": cu_sum, "flushed": ok}, f)


if __name__ == "__main__":
    main()
