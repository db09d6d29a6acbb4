"""A lean HTTP/1.1 client for upstream calls: asyncio protocols, httptools parsing, keep-alive.

The gateway's throughput is bounded by its outbound client. General-purpose clients spend
most of a proxied call's CPU on features a gateway does not use (cookies, redirects, proxies,
multipart, middlewares). This one writes each request with a single ``transport.write``,
parses answers with the same C parser uvicorn uses, and keeps connections per origin in a
LIFO pool. It speaks HTTP/1.1 over TCP or TLS, with content-length or chunked answers.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httptools

from pilothouse.gateway.config import Timeouts
from pilothouse.gateway.http import Reply, StreamReply
from pilothouse.gateway.providers.base import AttemptFailed
from pilothouse.timers import Deadline

#: Seconds an idle pooled connection is trusted (servers commonly close after 5-75 s).
IDLE_SECONDS = 4.0
_SSL: ssl.SSLContext | None = None


def _ssl_context() -> ssl.SSLContext:
    global _SSL
    if _SSL is None:
        _SSL = ssl.create_default_context()
    return _SSL


class _Timeout(Exception):
    """Raised into a waiting request when the upstream stayed silent too long."""


class Slots:
    """At most ``size`` requests in flight; the others wait their turn, first come first served.

    What ``asyncio.Semaphore`` does, without its few coroutine frames per request when a slot
    is free (the common case): here that costs a comparison and a decrement.
    """

    def __init__(self, size: int) -> None:
        self.free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take(self) -> asyncio.Future[None] | None:
        """Take a slot: None when one was free, else a future to pass to :meth:`turn`."""
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return None
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    async def turn(self, waiter: asyncio.Future[None]) -> None:
        """Wait until :meth:`give` hands a slot to ``waiter``."""
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed a slot it will not use: the next one takes it
            raise

    def give(self) -> None:
        """Free a slot: to the longest waiter still waiting, else back to the pool."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1


class Connection(asyncio.Protocol):
    """One keep-alive connection; runs one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.streaming = False
        #: when the current wait times out (one timer across the connection's waits)
        self.deadline = Deadline(loop, self.timed_out)
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.header_list: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.chunks: deque[bytes | None] = deque()
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.headers_done = False

    # --- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"invalid HTTP answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.deadline.stop()
        if not self.complete:
            self._fail(ConnectionError("the upstream closed the connection"))

    # --- httptools callbacks --------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_list.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True
        if self.streaming:
            self._wake()

    def on_body(self, body: bytes) -> None:
        if self.streaming:
            self.chunks.append(body)
            self._wake()
        else:
            self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True
        if self.streaming:
            self.chunks.append(None)
        self._wake()

    # --- requests -------------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def timed_out(self) -> None:
        self._fail(_Timeout())
        self.close()

    def close(self) -> None:
        self.closed = True
        self.deadline.stop()
        if self.transport is not None:
            self.transport.close()

    def send(self, data: bytes, streaming: bool) -> None:
        self._reset()
        self.streaming = streaming
        assert self.transport is not None
        self.transport.write(data)

    async def wait(self, silence: float) -> None:
        """Wait for the next parser event, at most ``silence`` seconds."""
        if self.error is not None:
            raise self.error
        loop = self.loop
        self.deadline.set(loop.time() + silence)
        self.waiter = loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None
            self.deadline.clear()

    def headers(self) -> Mapping[str, str]:
        return _Headers(self.header_list)


class _Headers(Mapping[str, str]):
    """An answer's headers, decoded only if someone reads them (providers rarely do)."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._decoded: dict[str, str] | None = None

    def _dict(self) -> dict[str, str]:
        if self._decoded is None:
            raw = self._raw
            self._decoded = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}
        return self._decoded

    def __getitem__(self, name: str) -> str:
        return self._dict()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())


class _Stream:
    """A streaming answer read from a pooled connection."""

    def __init__(self, conn: Connection, silence: float) -> None:
        self.conn = conn
        self.status = conn.status
        self.silence = silence

    async def read(self) -> bytes:
        return b"".join([c async for c in self.chunks()])

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self.conn
        while True:
            while conn.chunks:
                chunk = conn.chunks.popleft()
                if chunk is None:
                    return
                yield chunk
            await conn.wait(self.silence)


class PooledUpstream:
    """The default :class:`~pilothouse.gateway.http.Upstream`: pooled HTTP/1.1 connections."""

    def __init__(self, max_connections: int = 1000) -> None:
        self.max_connections = max_connections
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._slots = Slots(max_connections)
        self._targets: dict[str, tuple[tuple[str, str, int], bytes]] = {}

    def _target(self, url: str) -> tuple[tuple[str, str, int], bytes]:
        """(origin, request-line prefix) of a URL, memoized: deployments reuse a few URLs."""
        found = self._targets.get(url)
        if found is None:
            parts = urlsplit(url)
            scheme = parts.scheme
            host = parts.hostname or ""
            port = parts.port or (443 if scheme == "https" else 80)
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            host_header = host if parts.port is None else f"{host}:{port}"
            head = f"POST {path} HTTP/1.1\r\nhost: {host_header}\r\n".encode("latin-1")
            found = self._targets[url] = ((scheme, host, port), head)
            if len(self._targets) > 10_000:
                self._targets.clear()
        return found

    async def _connect(
        self, origin: tuple[str, str, int], timeouts: Timeouts, left: float = math.inf
    ) -> Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(min(timeouts.connect, left)):
                _, conn = await loop.create_connection(
                    lambda: Connection(loop),
                    host,
                    port,
                    ssl=_ssl_context() if scheme == "https" else None,
                    server_hostname=host if scheme == "https" else None,
                )
        except TimeoutError:
            raise AttemptFailed.timeout(f"no connection within {timeouts.connect:g}s") from None
        except OSError as exc:
            raise AttemptFailed.unreachable(exc) from None
        return conn

    def _pooled(self, origin: tuple[str, str, int]) -> Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_SECONDS:
                return conn
            conn.close()
        return None

    def _release(self, origin: tuple[str, str, int], conn: Connection) -> None:
        if conn.closed or not conn.complete or not conn.keep_alive:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.setdefault(origin, []).append(conn)

    @staticmethod
    def _request(head: bytes, content: bytes, headers: dict[str, str]) -> bytes:
        lines = [head]
        for name, value in headers.items():
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        lines.append(b"content-length: %d\r\n\r\n" % len(content))
        lines.append(content)
        return b"".join(lines)

    async def _open(
        self, url: str, content: bytes, headers: dict[str, str], timeouts: Timeouts, stream: bool
    ) -> tuple[tuple[str, str, int], Connection]:
        """Send the request and wait for the answer's headers (a stream) or all of it within
        ``timeouts.total`` (one timer per wait, rather than one more for the total)."""
        origin, head = self._target(url)
        data = self._request(head, content, headers)
        # The monotonic clock, not the loop's: asking for the running loop costs a system call
        # (getpid) per call on Python 3.11.
        deadline = math.inf if stream else time.monotonic() + timeouts.total
        for attempt in (0, 1):
            conn = self._pooled(origin)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(origin, timeouts, deadline - time.monotonic())
            conn.send(data, stream)
            try:
                while not (conn.headers_done if stream else conn.complete):
                    await conn.wait(min(timeouts.first_byte, deadline - time.monotonic()))
            except _Timeout:
                conn.close()
                if time.monotonic() >= deadline:
                    total = timeouts.total
                    raise AttemptFailed.timeout(f"no complete answer within {total:g}s") from None
                raise AttemptFailed.timeout(f"no answer within {timeouts.first_byte:g}s") from None
            except ConnectionError as exc:
                conn.close()
                # A pooled connection the server had closed: one fresh try, nothing was read.
                if reused and attempt == 0 and not conn.headers_done:
                    continue
                raise AttemptFailed.unreachable(exc) from None
            except BaseException:
                conn.close()
                raise
            return origin, conn
        raise AssertionError("unreachable")

    async def post(
        self, url: str, content: bytes, headers: dict[str, str], timeouts: Timeouts
    ) -> Reply:
        slots = self._slots
        waiter = slots.take()
        if waiter is not None:
            await slots.turn(waiter)
        try:
            origin, conn = await self._open(url, content, headers, timeouts, False)
        finally:
            slots.give()
        reply = Reply(conn.status, b"".join(conn.body), conn.headers())
        self._release(origin, conn)
        return reply

    @asynccontextmanager
    async def stream(
        self, url: str, content: bytes, headers: dict[str, str], timeouts: Timeouts
    ) -> AsyncIterator[StreamReply]:
        slots = self._slots
        waiter = slots.take()
        if waiter is not None:
            await slots.turn(waiter)
        try:
            origin, conn = await self._open(url, content, headers, timeouts, True)
            try:
                yield _Stream(conn, timeouts.first_byte)
            except _Timeout:
                raise AttemptFailed.timeout(
                    f"the stream was silent for {timeouts.first_byte:g}s"
                ) from None
            except ConnectionError as exc:
                raise AttemptFailed.unreachable(exc) from None
            finally:
                self._release(origin, conn)
        finally:
            slots.give()

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
