"""The one outbound HTTP seam: every provider call goes through :class:`Upstream`.

Tests swap the transport (``httpx.MockTransport`` or an ASGI app) without touching providers;
end-to-end tests use the default transport against a real socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from pilothouse.gateway.config import Timeouts
from pilothouse.gateway.providers.base import AttemptFailed


@dataclass(slots=True)
class Reply:
    """A complete upstream answer."""

    status: int
    content: bytes
    headers: httpx.Headers


class Upstream:
    """An httpx client with pooled connections, per-call timeouts and typed failures."""

    def __init__(
        self, transport: httpx.AsyncBaseTransport | None = None, max_connections: int = 1000
    ) -> None:
        self.transport = transport
        self.max_connections = max_connections
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        # Created on first use so it binds to the event loop that serves requests.
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self.transport,
                limits=httpx.Limits(
                    max_connections=self.max_connections,
                    max_keepalive_connections=self.max_connections,
                    keepalive_expiry=30,
                ),
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @staticmethod
    def _timeout(t: Timeouts) -> httpx.Timeout:
        # read = the longest silence allowed: before the first byte, or between stream chunks.
        return httpx.Timeout(connect=t.connect, read=t.first_byte, write=t.connect, pool=t.connect)

    async def post(
        self, url: str, content: bytes, headers: dict[str, str], timeouts: Timeouts
    ) -> Reply:
        """POST and read the whole answer within ``timeouts.total``."""
        try:
            async with asyncio.timeout(timeouts.total):
                response = await self.client.post(
                    url, content=content, headers=headers, timeout=self._timeout(timeouts)
                )
        except TimeoutError:
            raise AttemptFailed.timeout(f"no complete answer within {timeouts.total:g}s") from None
        except httpx.HTTPError as exc:
            raise AttemptFailed.transport(exc, timeouts) from None
        return Reply(response.status_code, response.content, response.headers)

    @asynccontextmanager
    async def stream(
        self, url: str, content: bytes, headers: dict[str, str], timeouts: Timeouts
    ) -> AsyncIterator[httpx.Response]:
        """POST and yield the response once its headers arrived (within ``first_byte``)."""
        request = self.client.build_request(
            "POST", url, content=content, headers=headers, timeout=self._timeout(timeouts)
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise AttemptFailed.transport(exc, timeouts) from None
        try:
            yield response
        finally:
            await response.aclose()


async def sse_events(response: httpx.Response, timeouts: Timeouts) -> AsyncIterator[bytes]:
    """The ``data:`` payloads of a server-sent-event stream, within ``timeouts.total``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeouts.total
    buffer = b""
    try:
        async for raw in response.aiter_raw():
            if loop.time() > deadline:
                raise AttemptFailed.timeout(
                    f"stream exceeded the {timeouts.total:g}s total timeout"
                )
            buffer += raw
            while True:
                cut = buffer.find(b"\n")
                if cut < 0:
                    break
                line, buffer = buffer[:cut].rstrip(b"\r"), buffer[cut + 1 :]
                if line.startswith(b"data:"):
                    yield line[5:].lstrip()
    except httpx.HTTPError as exc:
        raise AttemptFailed.transport(exc, timeouts) from None
    if buffer.startswith(b"data:"):
        yield buffer[5:].strip()
