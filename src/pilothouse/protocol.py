"""The HTTP protocol the server runs under uvicorn: httptools, one socket write per answer,
and a short road for the hot paths.

uvicorn writes a response's status line and headers, then its body, with two
``transport.write`` calls: two system calls, two TCP segments and two wake-ups of the client
for one small answer. For the gateway, whose answers are small and many, that was a fifth of
the server's CPU per proxied call (``docs/benchmarks.md``). :class:`HttpProtocol` gives uvicorn
a :class:`CoalescingTransport`, which gathers the writes made during one turn of the event
loop and sends them together at the end of that turn: a complete answer (start and body sent
back to back) leaves in one write, while a stream still goes out chunk by chunk as produced.

The hot paths (``asgi_hot_paths``: the gateway's ``/v1`` routes) take a shorter road still.
uvicorn's request cycle starts the app when the headers arrive and feeds it the body through
an event, checks every response header against two regular expressions, and runs the
request through its proxy-headers middleware and ours; at the gateway's rate that was a third
of the CPU of a proxied call. A request for an exact hot path, whose whole body has arrived,
runs its app in a :class:`HotCycle` instead: the body in one ``receive``, the answer's head
and body in one write, the body limit counted while reading. Anything unusual (another path,
a query string, ``HEAD``, ``Expect: 100-continue``, a declared body over the limit, a
pipelined request) takes uvicorn's road, which is the same app behind the same limit.

Run uvicorn with ``http=protocol_for(app)`` (``pilothouse serve`` does).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from starlette.types import ASGIApp, Message
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from pilothouse.api.bodylimit import too_large
from pilothouse.timers import Deadline

log = logging.getLogger("uvicorn.error")


class CoalescingTransport:
    """Wraps a transport so that the writes of one loop turn go out as one ``write``."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))

    def writelines(self, lines: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        """Send what was gathered (at the end of the loop turn, or before closing)."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        if not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def is_closing(self) -> bool:
        return self._transport.is_closing()  # asked once per request: not via __getattr__

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:
        # Everything else (reading, flow control, extra info) is the wrapped transport's.
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through a :class:`CoalescingTransport`; requests
    for :attr:`hot` paths run in a :class:`HotCycle` (see :func:`protocol_for`)."""

    #: exact request targets (bytes, as on the request line) → the app answering them
    hot: ClassVar[Mapping[bytes, ASGIApp]] = {}
    #: the body limit of hot requests (the server's ``max_body_bytes``)
    max_body: ClassVar[int] = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw_transport: asyncio.Transport = transport  # type: ignore[assignment]
        #: when an idle connection is closed (keep-alive), one timer across requests
        self.idle_deadline = Deadline(self.loop, self.timeout_keep_alive_handler)
        coalescing = CoalescingTransport(transport, self.loop)  # type: ignore[arg-type]
        super().connection_made(coalescing)  # type: ignore[arg-type]

    # --- keep-alive: one timer per connection -----------------------------------------------
    # uvicorn arms a keep-alive timer after every answer and cancels it when the next request
    # arrives. Here an answer sets the connection's keep-alive deadline and a request clears
    # it, on one timer (pilothouse.timers).

    def on_response_complete(self) -> None:
        # uvicorn's, with the keep-alive deadline.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self.idle_deadline.set(self.loop.time() + self.timeout_keep_alive)

    def _unset_keepalive_if_required(self) -> None:
        self.idle_deadline.clear()  # data arrived: busy

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.idle_deadline.stop()

    def on_headers_complete(self) -> None:
        app = self.hot.get(self.url) if self.hot else None
        if app is None or not self._hot_eligible():
            super().on_headers_complete()
            return
        method = self.parser.get_method().decode("ascii")
        http_version = self.parser.get_http_version()
        scope = self.scope
        scope["method"] = method
        if http_version != "1.1":
            scope["http_version"] = http_version
        path = self.url.decode("ascii")
        scope["path"] = self.root_path + path
        scope["raw_path"] = self.root_path.encode("ascii") + self.url
        scope["query_string"] = b""
        keep_alive = http_version != "1.0" and self.parser.should_keep_alive()
        self.cycle = HotCycle(self, app, keep_alive)  # type: ignore[assignment]

    def _hot_eligible(self) -> bool:
        """Whether this request can take the short road (see the module's docstring)."""
        if self.expect_100_continue or self.parser.should_upgrade():
            return False
        if self.cycle is not None and not self.cycle.response_complete:
            return False  # pipelined behind an answer in progress: uvicorn queues it
        if self.limit_concurrency is not None:
            return False
        if self.parser.get_method() not in (b"POST", b"GET"):
            return False
        for name, value in self.headers:
            if name == b"content-length":
                return not value.isdigit() or int(value) <= self.max_body
        return True

    def on_body(self, body: bytes) -> None:
        cycle: object = self.cycle
        if isinstance(cycle, HotCycle):
            cycle.feed(body)
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        cycle: object = self.cycle
        if isinstance(cycle, HotCycle):
            task = self.loop.create_task(cycle.run())
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)
        else:
            super().on_message_complete()


class HotCycle:
    """One hot request: its whole body handed over at once, its answer written directly.

    It stands where uvicorn keeps its request cycle (``protocol.cycle``), so the protocol's
    connection loss, shutdown and pipelining see the attributes they expect.
    """

    def __init__(self, protocol: HttpProtocol, app: ASGIApp, keep_alive: bool) -> None:
        self.protocol = protocol
        self.app = app
        self.keep_alive = keep_alive
        self.transport = protocol.raw_transport
        self._event: asyncio.Event | None = None  # made when someone waits or sets it
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self._parts: list[bytes] = []
        self._size = 0
        self._delivered = False
        self._head = b""
        self._chunked = False

    @property
    def message_event(self) -> asyncio.Event:
        """Set on disconnect or completion (what uvicorn's protocol sets on a lost connection)."""
        event = self._event
        if event is None:
            event = self._event = asyncio.Event()
        return event

    def feed(self, body: bytes) -> None:
        size = self._size + len(body)
        self._size = size
        if size <= self.protocol.max_body:
            self._parts.append(body)
        else:
            self._parts.clear()  # refused once the app reads it: keep nothing

    async def run(self) -> None:
        scope: Any = self.protocol.scope  # uvicorn's, completed for this request
        try:
            await self.app(scope, self.receive, self.send)
        except BaseException as exc:
            log.error("Exception in ASGI application\n", exc_info=exc)
        else:
            if self.response_complete or self.disconnected:
                return
            log.error("ASGI callable returned without completing its response.")
        # Failed: a 500 if nothing was sent yet, else the connection is cut.
        if self.response_started or self.disconnected:
            self.transport.close()
        else:
            self.keep_alive = False
            await self.send_500()

    async def send_500(self) -> None:
        body = b"Internal Server Error"
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21")]
        await self.send({"type": "http.response.start", "status": 500, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    async def receive(self) -> Message:
        if not self._delivered:
            self._delivered = True
            if self._size > self.protocol.max_body:
                raise too_large(self.protocol.max_body)
            parts = self._parts
            body = parts[0] if len(parts) == 1 else b"".join(parts)
            return {"type": "http.request", "body": body, "more_body": False}
        if not self.disconnected and not self.response_complete:
            await self.message_event.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        flow = self.protocol.flow
        if flow.write_paused and not self.disconnected:
            await flow.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(f"expected 'http.response.start', got {message['type']!r}")
            self._start(message["status"], message.get("headers", ()))
            self.response_started = True
            return
        if self.response_complete or message["type"] != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {message['type']!r}")
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        if self._chunked:
            data = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
            if not more:
                data += b"0\r\n\r\n"
        else:
            data = body
        if self._head:
            data = self._head + data
            self._head = b""
        if data:
            self.transport.write(data)
        if not more:
            self.response_complete = True
            if self._event is not None:  # someone waits for it (most answers: nobody)
                self._event.set()
            if not self.keep_alive:
                self.transport.close()
            self.protocol.on_response_complete()

    def _start(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> None:
        parts = [STATUS_LINE[status]]  # one line, then four parts per header
        chunked = status not in (204, 304)
        closing = False
        count = 0
        for name, value in headers:
            count += 1
            # Names as they come: ASGI has apps send them lowercased (the hot apps do).
            if name == b"content-length":
                chunked = False
            elif name == b"connection" and b"close" in value.lower():
                self.keep_alive = False
                closing = True
            parts += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not closing:
            parts.append(b"connection: close\r\n")
        if chunked:
            parts.append(b"transfer-encoding: chunked\r\n")
        parts.append(b"\r\n")
        head = b"".join(parts)
        # A line break inside a header would let its value write more headers.
        lines = len(parts) - 3 * count
        if head.count(b"\n") != lines or head.count(b"\r") != lines:
            raise RuntimeError("invalid HTTP header: line breaks are not allowed in headers")
        self._chunked = chunked
        if chunked:
            self.transport.write(head)  # a stream: its head leaves now, chunks follow
        else:
            self._head = head  # a complete answer: the head leaves with the body


def protocol_for(hot: Mapping[str, ASGIApp], max_body: int) -> type[HttpProtocol]:
    """uvicorn's ``http`` class serving ``hot`` (exact path → app) on the short road."""
    paths = {path.encode("ascii"): app for path, app in hot.items()}
    return type("HttpProtocol", (HttpProtocol,), {"hot": paths, "max_body": max_body})


__all__ = ["CoalescingTransport", "HotCycle", "HttpProtocol", "protocol_for"]
