"""A client that reacts to /v1/metrics exactly as Daydream's MetricsReporter does
(shared/interop.md): 200 only is success; 400 drops the batch; 401 pauses with the
batch kept; 413 halves (a single event still refused is dropped); 429 waits, batch
kept; 5xx or a network error re-queues with backoff 1 s doubling to 60 s. A re-sent
batch keeps its ids. Standard library only, so it needs nothing installed.

usage: daydream_reporter.py URL KEY OUT.json EVENTS BAD [WAIT_429_SECONDS]
  EVENTS  valid stream events (ids: UUID v4; every 7th has no id, to exercise derived ids)
  BAD     events with an unreadable timestamp (the gateway must reject and keep them)
"""

import json
import random
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid

MAX_EVENTS, MAX_BYTES = 500, 1 << 20


def event(n, bad):
    kind = ["stream_started", "stream_stopped", "error"][n % 3]
    data = {
        "type": kind,
        "client_source": "scope",
        "session_id": f"sess-{n}",
        "connection_id": f"conn-{n % 17}",
        "pipeline_ids": ["longlive", f"p{n % 5}"],
        "user_id": f"user-{n % 9}",
        "serial": n,
        "connection_info": {"ice": {"candidates": [1, 2, n]}, "rtt_ms": 12.5},
    }
    if kind == "error":
        data["error"] = {"message": "decoder stalled", "code": 500 + n % 3, "retryable": True}
    ev = {"type": kind, "data": data, "timestamp": "soon" if bad else str(1764633600000 + n)}
    if n % 7:
        ev["id"] = str(uuid.uuid4())
    return ev


class Reporter:
    def __init__(self, url, key, wait_429):
        self.url, self.key, self.wait_429 = url, key, wait_429
        self.stats = {"posts": 0, "status": {}, "dropped_400": 0, "dropped_413": 0, "network_errors": 0, "rejected": []}

    def post(self, events):
        body = json.dumps({"app": "scope", "host": socket.gethostname(), "events": events}).encode()
        req = urllib.request.Request(self.url, data=body, method="POST")
        req.add_header("Authorization", f"Bearer {self.key}")
        req.add_header("Content-Type", "application/json")
        self.stats["posts"] += 1
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
            self.stats["network_errors"] += 1
            return None, b""

    def send(self, batch):
        """Delivers one batch, reacting as the reporter does; returns when it is done with it."""
        if len(batch) > 1 and len(json.dumps(batch).encode()) > MAX_BYTES:
            half = len(batch) // 2
            self.send(batch[:half])
            self.send(batch[half:])
            return
        backoff = 1.0
        while True:
            status, body = self.post(batch)
            self.stats["status"][str(status)] = self.stats["status"].get(str(status), 0) + 1
            if status == 200:
                answer = json.loads(body)
                self.stats["rejected"].extend(batch[r["index"]]["data"]["serial"] for r in answer["rejected"])
                return
            if status == 400:
                self.stats["dropped_400"] += len(batch)
                return
            if status == 401:
                time.sleep(1.0)  # paused until the key is refreshed: the batch is kept
                continue
            if status == 413:
                if len(batch) == 1:
                    self.stats["dropped_413"] += 1
                    return
                half = len(batch) // 2
                self.send(batch[:half])
                self.send(batch[half:])
                return
            if status == 429:
                time.sleep(self.wait_429)
                continue
            # 5xx, any other 2xx, a network error: re-queue with backoff (same ids).
            time.sleep(backoff * random.uniform(0.9, 1.1))
            backoff = min(backoff * 2, 60.0)


def main():
    url, key, out, n, bad = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    wait_429 = float(sys.argv[6]) if len(sys.argv) > 6 else 60.0
    events = [event(i, False) for i in range(n)] + [event(n + i, True) for i in range(bad)]
    random.Random(7).shuffle(events)
    reporter = Reporter(url, key, wait_429)
    for start in range(0, len(events), MAX_EVENTS):
        reporter.send(events[start : start + MAX_EVENTS])
    sent = [
        {"serial": e["data"]["serial"], "id": e.get("id"), "bad": e["timestamp"] == "soon", "type": e["type"], "data": e["data"]}
        for e in events
    ]
    with open(out, "w") as f:
        json.dump({"stats": reporter.stats, "sent": sent}, f)


if __name__ == "__main__":
    main()
