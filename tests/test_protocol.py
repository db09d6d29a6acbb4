"""The server's HTTP protocol: one write per complete answer, streams still flow, same bytes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from pilothouse.api.bodylimit import BodyLimit
from pilothouse.errors import PayloadTooLarge
from pilothouse.protocol import CoalescingTransport, HttpProtocol, protocol_for


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


SEEN: list[dict[str, Any]] = []  # what the app received, per request


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    try:
        message = await receive()
    except PayloadTooLarge:
        headers = [(b"content-length", b"8")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": b"too big!"})
        return
    SEEN.append({"path": scope["path"], "body": message["body"], "method": scope["method"]})
    if scope["path"] == "/boom":
        raise ValueError("the app failed")
    if scope["path"] == "/inject":
        headers = [(b"x-bad", b"a\r\nset-cookie: evil=1")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        return
    if scope["path"] == "/wait":  # a stream that ends when the client goes away
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first;", "more_body": True})
        SEEN.append({"after": await receive()})
        return
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


HOT = ("/json", "/stream", "/boom", "/inject", "/wait", "/big")


@contextlib.contextmanager
def serving(asgi: ASGIApp, http: type[HttpProtocol], **options: Any) -> Iterator[str]:
    """``asgi`` served by uvicorn with the ``http`` protocol on a free port (``options``:
    more of uvicorn's settings)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        asgi,
        host="127.0.0.1",
        port=port,
        http=http,
        log_level="critical",
        lifespan="off",
        **options,
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.01)
    SEEN.clear()
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(params=["uvicorn", "hot"])
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    """The protocol with no hot path, and with every test path hot (64-byte body limit)."""
    http = HttpProtocol if request.param == "uvicorn" else protocol_for(dict.fromkeys(HOT, app), 64)
    with serving(app, http) as url:
        yield url


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


@pytest.fixture
def hot() -> Iterator[str]:
    """Only the short road: every test path hot, bodies up to 64 bytes; uvicorn's road
    behind the same limit, as in the server."""
    with serving(BodyLimit(app, 64), protocol_for(dict.fromkeys(HOT, app), 64)) as url:
        yield url


def test_a_hot_request_gets_its_whole_body_in_one_receive(hot: str):
    def chunks() -> Iterator[bytes]:
        yield b'{"a":'
        yield b"1}"

    with httpx.Client(base_url=hot) as client:
        r = client.post("/json", content=chunks())  # sent chunked: two pieces, one body
        assert r.status_code == 200 and r.json() == {"ok": True}
        assert r.headers["content-length"] == "11"
        assert client.get("/json").status_code == 200
    assert SEEN == [
        {"path": "/json", "body": b'{"a":1}', "method": "POST"},
        {"path": "/json", "body": b"", "method": "GET"},
    ]


def test_a_hot_body_over_the_limit_is_refused_by_the_app(hot: str):
    with httpx.Client(base_url=hot) as client:
        streamed = client.post("/json", content=iter([b"x" * 40, b"y" * 40]))
        assert (streamed.status_code, streamed.content) == (413, b"too big!")
        declared = client.post("/json", content=b"z" * 65)  # uvicorn's road, the same answer
        assert (declared.status_code, declared.content) == (413, b"too big!")
        assert client.post("/json", content=b"{}").status_code == 200  # the connection goes on
    assert [seen["body"] for seen in SEEN] == [b"{}"]


def test_other_requests_take_uvicorns_road_to_the_same_app(hot: str):
    with httpx.Client(base_url=hot) as client:
        assert client.post("/json?x=1", content=b"q").status_code == 200
        assert client.head("/json").status_code == 200
        assert client.post("/elsewhere", content=b"e").status_code == 200
    assert [(seen["path"], seen["method"]) for seen in SEEN] == [
        ("/json", "POST"),
        ("/json", "HEAD"),
        ("/elsewhere", "POST"),
    ]


def test_a_failing_hot_app_answers_500_and_closes(hot: str):
    with httpx.Client(base_url=hot) as client:
        r = client.post("/boom", content=b"")
        assert r.status_code == 500 and r.headers["connection"] == "close"
        injected = client.post("/inject", content=b"")
        assert injected.status_code == 500 and "set-cookie" not in injected.headers


def test_pipelined_hot_requests_are_answered_in_order(hot: str):
    port = int(hot.rsplit(":", 1)[1])
    one = b"POST /json HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\na"
    two = b"POST /json HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\nconnection: close\r\n\r\nb"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(one + two)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 2 and data.endswith(b'{"ok":true}')
    assert [seen["body"] for seen in SEEN] == [b"a", b"b"]


def test_a_hot_app_sees_the_client_leave(hot: str):
    port = int(hot.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /wait HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        data = b""
        while b"first;" not in data:
            data += sock.recv(65536)
        assert b"transfer-encoding: chunked" in data
    deadline = time.monotonic() + 10
    while len(SEEN) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert SEEN[-1] == {"after": {"type": "http.disconnect"}}


@pytest.mark.parametrize("road", ["uvicorn", "hot"])
def test_idle_connections_close_after_the_keep_alive_timeout_busy_ones_stay(road: str):
    # One timer lasts across the requests of a connection: it must close an idle connection
    # once the timeout has passed since its last answer, and never a busy one.
    http = HttpProtocol if road == "uvicorn" else protocol_for(dict.fromkeys(HOT, app), 64)
    with serving(app, http, timeout_keep_alive=0.5) as url:
        port = int(url.rsplit(":", 1)[1])
        request = b"POST /json HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            for i in range(8):  # 1.4 s of requests 0.2 s apart: the timer fires meanwhile
                if i:
                    time.sleep(0.2)
                sock.sendall(request)
                data = b""
                while not data.endswith(b'{"ok":true}'):
                    chunk = sock.recv(65536)
                    assert chunk, "a connection in use was closed"
                    data += chunk
            answered = time.monotonic()
            assert sock.recv(65536) == b""  # then idle: closed by the server
            idle = time.monotonic() - answered
        assert 0.4 <= idle < 3, idle
