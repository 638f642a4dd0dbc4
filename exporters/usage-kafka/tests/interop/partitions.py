"""Checks `pack_by = "partition"` with confluent-kafka (a client usage did not write).

usage:
  partitions.py create BROKERS TOPIC PARTITIONS
      creates TOPIC with PARTITIONS partitions and waits until its metadata shows them.
  partitions.py check BROKERS PACKED_TOPIC EXPECTED_LINES
      reads every NDJSON line of PACKED_TOPIC, then produces one message keyed by each
      project seen to a fresh topic with the same partition count, with
      confluent-kafka's own partitioner, and prints one JSON object:
      {"lines", "ids", "projects", "partitions", "messages", "mismatched": [...]}.
"""
import json
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic


def create(brokers, topic, partitions):
    admin = AdminClient({"bootstrap.servers": brokers})
    for future in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).values():
        future.result(30)
    deadline = time.time() + 30
    while time.time() < deadline:
        md = admin.list_topics(topic, timeout=10).topics.get(topic)
        if md is not None and md.error is None and len(md.partitions) == partitions:
            return
        time.sleep(0.2)
    sys.exit(f"{topic} never showed {partitions} partitions")


def read_lines(brokers, topic, expected):
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": "usage-e2e-partitions", "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    lines, messages = [], 0
    deadline = time.time() + 30
    while len(lines) < expected and time.time() < deadline:
        m = consumer.poll(0.5)
        if m is None or m.error():
            continue
        messages += 1
        if m.key() is not None:
            sys.exit(f"a packed message has a key: {m.key()!r}")
        for line in m.value().decode().splitlines():
            lines.append((m.partition(), json.loads(line)))
    consumer.close()
    return len(partitions), messages, lines


def check(brokers, topic, expected):
    count, messages, lines = read_lines(brokers, topic, expected)
    placed = {}
    for partition, event in lines:
        placed.setdefault(event["project"], set()).add(partition)
    reference = f"{topic}-ref"
    create(brokers, reference, count)
    producer = Producer({"bootstrap.servers": brokers})
    chosen = {}

    def delivered(err, msg):
        if err is None:
            chosen[msg.key().decode()] = msg.partition()

    for project in placed:
        producer.produce(reference, key=project.encode(), value=b"{}", on_delivery=delivered)
    producer.flush(30)
    mismatched = [
        {"project": p, "packed": sorted(parts), "confluent_kafka": chosen.get(p)}
        for p, parts in placed.items()
        if parts != {chosen.get(p)}
    ]
    print(json.dumps({
        "lines": len(lines),
        "ids": len({event["id"] for _, event in lines}),
        "projects": len(placed),
        "partitions": count,
        "used_partitions": len({p for p, _ in lines}),
        "messages": messages,
        "mismatched": mismatched,
    }))


if sys.argv[1] == "create":
    create(sys.argv[2], sys.argv[3], int(sys.argv[4]))
elif sys.argv[1] == "check":
    check(sys.argv[2], sys.argv[3], int(sys.argv[4]))
else:
    sys.exit(__doc__)
