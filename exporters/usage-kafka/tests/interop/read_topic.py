"""Reads every message of a topic with confluent-kafka (a client usage did not
write) and prints one JSON line per message: {"key": ..., "value": <parsed JSON>}.

usage: read_topic.py BROKERS TOPIC EXPECTED [PROPERTIES_JSON]
(PROPERTIES_JSON: more librdkafka properties, e.g. for TLS)
"""
import json
import sys
import time

from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

brokers, topic, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = {
    "bootstrap.servers": brokers,
    "group.id": "usage-e2e-reader",
    "enable.auto.commit": False,
}
if len(sys.argv) > 4:
    config.update(json.loads(sys.argv[4]))
consumer = Consumer(config)
partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
messages = []
deadline = time.time() + 30
while len(messages) < expected and time.time() < deadline:
    m = consumer.poll(0.5)
    if m is None or m.error():
        continue
    key = m.key().decode() if m.key() is not None else None
    messages.append({"key": key, "value": json.loads(m.value())})
consumer.close()
for message in messages:
    print(json.dumps(message))
