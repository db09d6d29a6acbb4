"""The server's HTTP protocol: one write per complete answer, streams still flow, same bytes."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from pilothouse.protocol import CoalescingTransport, HttpProtocol


class RecordingTransport:
    """The transport's side that the wrapper calls, recording every write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else None


async def test_writes_of_one_loop_turn_leave_together():
    inner = RecordingTransport()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"body")
    assert inner.writes == [] and transport.get_write_buffer_size() == 23
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    transport.write(b"next")
    transport.close()  # closing sends what is pending first
    assert inner.writes[-1] == b"next" and inner.closed
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"%d;" % i, "more_body": True})
            await asyncio.sleep(0.01)  # a chunk per loop turn: each leaves on its own
        await send({"type": "http.response.body", "body": b"end"})
        return
    body = b'{"ok":true}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"11")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def server() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=HttpProtocol, log_level="warning", lifespan="off"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def test_answers_and_streams_over_one_kept_alive_connection(server: str):
    with httpx.Client(base_url=server) as client:
        for _ in range(3):
            r = client.post("/json", content=b"{}")
            assert r.status_code == 200 and r.json() == {"ok": True}
        with client.stream("POST", "/stream", content=b"") as streamed:
            assert streamed.headers["transfer-encoding"] == "chunked"
            chunks = list(streamed.iter_raw())
        assert b"".join(chunks) == b"0;1;2;end"
        r = client.post("/json", content=b"{}", headers={"connection": "close"})
        assert r.json() == {"ok": True} and r.headers.get("connection") == "close"
