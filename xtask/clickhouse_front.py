"""A ClickHouse HTTP front over chDB, for `cargo xtask e2e` and `cargo xtask bench`.

THE HTTP LAYER IS OURS; THE ENGINE IS CLICKHOUSE'S. No current ClickHouse server
installs from the registries this project's CI reaches, but chDB (PyPI) is the
ClickHouse 26.x engine in-process. This script answers the subset of ClickHouse's HTTP
interface that the `clickhouse` crate and our tests use, and hands every statement to
that engine unchanged: DDL, SELECTs (any FORMAT), and `INSERT ... FORMAT RowBinary`
(the body, LZ4 native framing decoded when `decompress=1`, is read by the engine's own
RowBinary reader through `file()`). URL settings the engine must see
(`insert_deduplication_token`, `async_insert`, ...) are passed into the statement's
SETTINGS clause. What is parsed, typed, deduplicated and stored is ClickHouse's doing.

usage: clickhouse_front.py PORT DATA_DIR
"""

import os
import re
import sys
import tempfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from chdb import session

# URL parameters that are transport, not query settings.
TRANSPORT = {
    "query", "database", "default_format", "user", "password", "compress", "decompress",
    "query_id", "session_id", "session_timeout", "session_check", "wait_end_of_query",
    "enable_http_compression", "send_progress_in_http_headers", "param_",
}
INSERT_ROWBINARY = re.compile(r"^\s*INSERT\s+INTO\s+(\S+)\s*\(([^)]*)\)\s*FORMAT\s+RowBinary\s*$", re.I | re.S)
FORMAT_AT_END = re.compile(r"\sFORMAT\s+(\w+)\s*;?\s*$", re.I)
SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def unquote(ident):
    return ident.strip().strip("`").strip('"')


def quote_value(v):
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def lz4_frames(data):
    """ClickHouse's native compression framing: 16-byte checksum, method, sizes, block."""
    import lz4.block

    out, at = bytearray(), 0
    while at < len(data):
        method = data[at + 16]
        compressed = int.from_bytes(data[at + 17 : at + 21], "little")
        size = int.from_bytes(data[at + 21 : at + 25], "little")
        block = data[at + 25 : at + 16 + compressed]
        if method == 0x82:
            out += lz4.block.decompress(block, uncompressed_size=size)
        elif method == 0x02:
            out += block
        else:
            raise ValueError(f"compression method {method:#x} is not supported by this front")
        at += 16 + compressed
    return bytes(out)


class Engine:
    def __init__(self, path):
        self.session = session.Session(path)
        self.lock = threading.Lock()

    def run(self, sql, fmt="TabSeparated"):
        with self.lock:
            result = self.session.query(sql, fmt)
        return bytes(result.bytes()) if result is not None else b""

    def insert_rowbinary(self, table, columns, data, settings):
        if not data:
            return b""
        db, _, name = table.rpartition(".")
        db = unquote(db) if db else "default"
        rows = self.run(
            f"SELECT name, type FROM system.columns WHERE database = {quote_value(db)} "
            f"AND table = {quote_value(unquote(name))}",
            "TabSeparatedRaw",
        ).decode()
        types = dict(line.split("\t", 1) for line in rows.splitlines() if line)
        if not types:
            raise RuntimeError(f"Code: 60. DB::Exception: Table {table} does not exist. (UNKNOWN_TABLE)")
        cols = [unquote(c) for c in columns.split(",")]
        missing = [c for c in cols if c not in types]
        if missing:
            raise RuntimeError(f"Code: 16. DB::Exception: No such column {missing[0]} in table {table}. (NO_SUCH_COLUMN_IN_TABLE)")
        structure = ", ".join(f"`{c}` {types[c]}" for c in cols)
        fd, path = tempfile.mkstemp(suffix=".rowbinary")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            clause = f" SETTINGS {settings}" if settings else ""
            return self.run(
                f"INSERT INTO {table} ({columns}){clause} "
                f"SELECT * FROM file({quote_value(path)}, 'RowBinary', {quote_value(structure)})"
            )
        finally:
            os.unlink(path)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    engine = None

    def log_message(self, *args):
        pass

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self, status, payload, exception_code=None):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-ClickHouse-Server-Display-Name", "chdb-front")
        if exception_code:
            self.send_header("X-ClickHouse-Exception-Code", exception_code)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path in ("/ping", "/") and "query" not in urllib.parse.parse_qs(url.query):
            return self.answer(200, b"Ok.\n")
        self.handle_query(b"")

    def do_POST(self):
        self.handle_query(self.body())

    def handle_query(self, body):
        if os.environ.get("CLICKHOUSE_FRONT_LOG"):
            print(self.command, self.path, dict(self.headers), body[:200], file=sys.stderr, flush=True)
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query, keep_blank_values=True))
        settings = ", ".join(
            f"{k} = {quote_value(v)}"
            for k, v in params.items()
            if k not in TRANSPORT and not k.startswith("param_") and SETTING_NAME.match(k)
        )
        try:
            if "query" in params:
                sql, data = params["query"], body
                if params.get("decompress") == "1":
                    data = lz4_frames(data)
            else:
                sql, data = body.decode(), b""
            insert = INSERT_ROWBINARY.match(sql)
            if insert:
                out = self.engine.insert_rowbinary(insert.group(1), insert.group(2), data, settings)
            else:
                fmt = FORMAT_AT_END.search(sql)
                head = sql[: fmt.start()] if fmt else sql
                is_select = re.match(r"^\s*(SELECT|WITH|EXISTS|SHOW|DESCRIBE|DESC)\b", head, re.I)
                if settings and is_select:
                    head += f" SETTINGS {settings}"
                out = self.engine.run(head, fmt.group(1) if fmt else params.get("default_format", "TabSeparated"))
            self.answer(200, out)
        except Exception as e:  # the engine's own error text, as a server sends it
            text = str(e)
            code = re.match(r"Code: (\d+)", text)
            self.answer(500 if code else 400, (text.strip() + "\n").encode(), code.group(1) if code else None)


def main():
    port, data = int(sys.argv[1]), sys.argv[2]
    os.makedirs(data, exist_ok=True)
    Handler.engine = Engine(data)
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
