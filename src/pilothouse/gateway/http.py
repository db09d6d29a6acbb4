"""The one outbound HTTP seam: every provider call goes through an :class:`Upstream`.

:class:`AiohttpUpstream` is the default: measured on the benchmark machine it sustains several
times the request rate of an httpx ``AsyncClient`` (see docs/benchmarks.md), and the gateway's
throughput is bounded by its outbound client. :class:`HttpxUpstream` takes any httpx transport,
so tests (or embedders) can put an in-process ASGI app or ``httpx.MockTransport`` behind the
gateway without touching providers; end-to-end tests use real sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import httpx

from pilothouse.gateway.config import Timeouts
from pilothouse.gateway.providers.base import AttemptFailed


@dataclass(slots=True)
class Reply:
    """A complete upstream answer."""

    status: int
    content: bytes
    headers: Mapping[str, str]


class StreamReply(Protocol):
    """An upstream answer whose headers arrived; the body is read on demand."""

    status: int

    async def read(self) -> bytes: ...

    def chunks(self) -> AsyncIterator[bytes]: ...


class Upstream(Protocol):
    """What providers need from the outbound HTTP client."""

    async def post(
        self, url: str, content: bytes, headers: dict[str, str], timeouts: Timeouts
    ) -> Reply:
        """POST and read the whole answer within ``timeouts.total``."""
        ...

    def stream(
        self, url: str, content: bytes, headers: dict[str, str], timeouts: Timeouts
    ) -> AbstractAsyncContextManager[StreamReply]:
        """POST and yield once the answer's headers arrived (within ``first_byte``)."""
        ...

    async def aclose(self) -> None: ...


def make_upstream(max_connections: int = 1000, client: str = "pooled") -> Upstream:
    """The outbound client: ``pooled`` (the default, :mod:`.pool`) or ``aiohttp``."""
    if client == "aiohttp":
        return AiohttpUpstream(max_connections)
    from pilothouse.gateway.pool import PooledUpstream

    return PooledUpstream(max_connections)


# --- aiohttp ------------------------------------------------------------------------------


class _AiohttpStream:
    __slots__ = ("_response", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status

    async def read(self) -> bytes:
        return await self._response.read()

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.content.iter_any():
            yield chunk


def _aiohttp_failure(exc: BaseException, timeouts: Timeouts) -> AttemptFailed:
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return AttemptFailed.timeout(f"no connection within {timeouts.connect:g}s")
    if isinstance(exc, TimeoutError):
        return AttemptFailed.timeout(f"no answer within {timeouts.first_byte:g}s")
    return AttemptFailed.unreachable(exc)


class AiohttpUpstream:
    """Pooled keep-alive connections; per-call connect, first-byte and total timeouts."""

    def __init__(self, max_connections: int = 1000) -> None:
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        # Created on first use so it binds to the event loop that serves requests.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections, ttl_dns_cache=300, keepalive_timeout=30
            )
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=True, trust_env=False
            )
        return self._session

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @staticmethod
    def _timeout(t: Timeouts) -> aiohttp.ClientTimeout:
        # sock_read = the longest silence: before the first byte, or between stream chunks.
        return aiohttp.ClientTimeout(
            total=None, connect=t.connect, sock_connect=t.connect, sock_read=t.first_byte
        )

    async def post(
        self, url: str, content: bytes, headers: dict[str, str], timeouts: Timeouts
    ) -> Reply:
        try:
            async with asyncio.timeout(timeouts.total):
                async with self.session.post(
                    url, data=content, headers=headers, timeout=self._timeout(timeouts)
                ) as response:
                    body = await response.read()
                    return Reply(response.status, body, response.headers)
        except TimeoutError as exc:
            if isinstance(exc, aiohttp.ServerTimeoutError):
                raise _aiohttp_failure(exc, timeouts) from None
            total = timeouts.total
            raise AttemptFailed.timeout(f"no complete answer within {total:g}s") from None
        except aiohttp.ClientError as exc:
            raise _aiohttp_failure(exc, timeouts) from None

    @asynccontextmanager
    async def stream(
        self, url: str, content: bytes, headers: dict[str, str], timeouts: Timeouts
    ) -> AsyncIterator[StreamReply]:
        try:
            response = await self.session.post(
                url, data=content, headers=headers, timeout=self._timeout(timeouts)
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _aiohttp_failure(exc, timeouts) from None
        try:
            yield _AiohttpStream(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _aiohttp_failure(exc, timeouts) from None
        finally:
            response.close()


# --- httpx --------------------------------------------------------------------------------


class _HttpxStream:
    __slots__ = ("_response", "status")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code

    async def read(self) -> bytes:
        return await self._response.aread()

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.aiter_raw():
            yield chunk


def _httpx_failure(exc: httpx.HTTPError, timeouts: Timeouts) -> AttemptFailed:
    if isinstance(exc, httpx.ConnectTimeout):
        return AttemptFailed.timeout(f"no connection within {timeouts.connect:g}s")
    if isinstance(exc, httpx.TimeoutException):
        return AttemptFailed.timeout(f"no answer within {timeouts.first_byte:g}s")
    return AttemptFailed.unreachable(exc)


class HttpxUpstream:
    """The same seam over an httpx transport (e.g. ``httpx.ASGITransport(app)``)."""

    def __init__(
        self, transport: httpx.AsyncBaseTransport | None = None, max_connections: int = 1000
    ) -> None:
        self.transport = transport
        self.max_connections = max_connections
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(
                max_connections=self.max_connections,
                max_keepalive_connections=self.max_connections,
            )
            self._client = httpx.AsyncClient(
                transport=self.transport, limits=limits, trust_env=False
            )
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @staticmethod
    def _timeout(t: Timeouts) -> httpx.Timeout:
        return httpx.Timeout(connect=t.connect, read=t.first_byte, write=t.connect, pool=t.connect)

    async def post(
        self, url: str, content: bytes, headers: dict[str, str], timeouts: Timeouts
    ) -> Reply:
        try:
            async with asyncio.timeout(timeouts.total):
                response = await self.client.post(
                    url, content=content, headers=headers, timeout=self._timeout(timeouts)
                )
        except TimeoutError:
            total = timeouts.total
            raise AttemptFailed.timeout(f"no complete answer within {total:g}s") from None
        except httpx.HTTPError as exc:
            raise _httpx_failure(exc, timeouts) from None
        return Reply(response.status_code, response.content, response.headers)

    @asynccontextmanager
    async def stream(
        self, url: str, content: bytes, headers: dict[str, str], timeouts: Timeouts
    ) -> AsyncIterator[StreamReply]:
        request = self.client.build_request(
            "POST", url, content=content, headers=headers, timeout=self._timeout(timeouts)
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _httpx_failure(exc, timeouts) from None
        try:
            yield _HttpxStream(response)
        except httpx.HTTPError as exc:
            raise _httpx_failure(exc, timeouts) from None
        finally:
            await response.aclose()


# --- server-sent events -------------------------------------------------------------------


async def sse_events(response: StreamReply, timeouts: Timeouts) -> AsyncIterator[bytes]:
    """The ``data:`` payloads of a server-sent-event stream, within ``timeouts.total``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeouts.total
    buffer = b""
    async for raw in response.chunks():
        if loop.time() > deadline:
            total = timeouts.total
            raise AttemptFailed.timeout(f"stream exceeded the {total:g}s total timeout")
        buffer += raw
        while True:
            cut = buffer.find(b"\n")
            if cut < 0:
                break
            line, buffer = buffer[:cut].rstrip(b"\r"), buffer[cut + 1 :]
            if line.startswith(b"data:"):
                yield line[5:].lstrip()
    if buffer.startswith(b"data:"):
        yield buffer[5:].strip()
