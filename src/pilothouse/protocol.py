"""The HTTP protocol the server runs under uvicorn: httptools, one socket write per answer.

uvicorn writes a response's status line and headers, then its body, with two
``transport.write`` calls: two system calls, two TCP segments and two wake-ups of the client
for one small answer. For the gateway, whose answers are small and many, that was a fifth of
the server's CPU per proxied call (``docs/benchmarks.md``). :class:`HttpProtocol` gives uvicorn
a :class:`CoalescingTransport`, which gathers the writes made during one turn of the event
loop and sends them together at the end of that turn: a complete answer (start and body sent
back to back) leaves in one write, while a stream still goes out chunk by chunk as produced.

Run uvicorn with ``http=HttpProtocol`` (``pilothouse serve`` does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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
    """uvicorn's httptools protocol, writing through a :class:`CoalescingTransport`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        coalescing = CoalescingTransport(transport, self.loop)  # type: ignore[arg-type]
        super().connection_made(coalescing)  # type: ignore[arg-type]


__all__ = ["CoalescingTransport", "HttpProtocol"]
