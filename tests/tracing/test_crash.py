"""kill -9 under ingestion load: every acknowledged span is in the database after a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2

from pilothouse.store import Database
from pilothouse.store import traces as store
from tests.conftest import ADMIN_KEY, free_port

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/x-protobuf"}


@contextmanager
def server(tmp_path: Path, database_url: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = os.environ | {
        "PILOTHOUSE_DATA_DIR": str(tmp_path / "data"),
        "PILOTHOUSE_DATABASE_URL": database_url,
        "PILOTHOUSE_ADMIN_KEY": ADMIN_KEY,
        "PILOTHOUSE_ADMIN_PASSWORD": "crash-test-password",
        "PILOTHOUSE_WORKERS_INLINE": "false",
        "PILOTHOUSE_LOG_LEVEL": "warning",
        "PILOTHOUSE_PORT": str(port),
    }
    log = (tmp_path / f"server-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "pilothouse", "serve"], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (tmp_path / f"server-{port}.log").read_text()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(30)
        log.close()


def batch(n: int) -> tuple[bytes, list[tuple[str, str]]]:
    spans = []
    now = time.time_ns()
    for _ in range(n):
        spans.append(
            trace_pb2.Span(
                trace_id=os.urandom(16),
                span_id=os.urandom(8),
                name="crash",
                start_time_unix_nano=now,
                end_time_unix_nano=now + 1000,
            )
        )
    request = ExportTraceServiceRequest(
        resource_spans=[trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=spans)])]
    )
    keys = [(s.trace_id.hex(), s.span_id.hex()) for s in spans]
    return request.SerializeToString(), keys


def test_acknowledged_spans_survive_kill_9(tmp_path: Path, database_url: str):
    acknowledged: list[tuple[str, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def send(url: str) -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                body, keys = batch(50)
                try:
                    response = client.post(f"{url}/v1/traces", content=body, headers=HEADERS)
                except httpx.TransportError:
                    return  # the server is gone
                if response.status_code == 200:
                    with lock:
                        acknowledged.extend(keys)

    with server(tmp_path, database_url) as (process, url):
        senders = [threading.Thread(target=send, args=(url,)) for _ in range(4)]
        for sender in senders:
            sender.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < 3000 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)  # while requests are in flight
        process.wait(10)
        stop.set()
        for sender in senders:
            sender.join(15)
    assert len(acknowledged) >= 1000

    with server(tmp_path, database_url) as (_process, url):  # restarts on the same database
        assert (
            httpx.get(f"{url}/api/traces", headers=HEADERS, params={"limit": 1}).status_code == 200
        )
    db = Database(database_url)
    try:
        with db.read() as conn:
            query = store.spans.select().with_only_columns(
                store.spans.c.trace_id, store.spans.c.span_id
            )
            found = {(row[0], row[1]) for row in conn.execute(query)}
            stored = store.count_spans(conn)
    finally:
        db.close()
    missing = [key for key in acknowledged if key not in found]
    assert missing == [], f"{len(missing)} acknowledged spans lost"
    assert stored >= len(acknowledged)
