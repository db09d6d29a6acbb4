"""The pooled HTTP/1.1 client: keep-alive reuse, chunked answers, stale connections, timeouts."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterable

import pytest

from pilothouse.gateway.config import Timeouts
from pilothouse.gateway.pool import PooledUpstream, Slots
from pilothouse.gateway.providers.base import AttemptFailed

FAST = Timeouts(connect=1, first_byte=0.5, total=2)


class RawServer:
    """A TCP server answering each request with ``answer`` bytes, counting connections."""

    def __init__(self, answer: bytes, close_after: bool = False, silent: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after
        self.silent = silent
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.requests.append(head + await reader.readexactly(length))
                if self.silent:
                    await asyncio.sleep(5)
                writer.write(self.answer)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def serve(server: RawServer) -> AsyncIterator[str]:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield f"http://127.0.0.1:{port}/v1/chat/completions"


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def test_reuses_connections_and_sends_one_well_formed_request() -> None:
    server = RawServer(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-up: 1\r\n\r\nhi")
    client = PooledUpstream()
    async for url in serve(server):
        for _ in range(3):
            reply = await client.post(url, b'{"a":1}', {"authorization": "Bearer k"}, FAST)
            assert (reply.status, reply.content, reply.headers["x-up"]) == (200, b"hi", "1")
        assert server.connections == 1
        first = server.requests[0]
        assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:")
        assert b"authorization: Bearer k\r\n" in first and first.endswith(b'\r\n\r\n{"a":1}')
    await client.aclose()


async def test_chunked_answers_are_decoded_and_streamed() -> None:
    body = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    client = PooledUpstream()
    async for url in serve(RawServer(body)):
        assert (await client.post(url, b"{}", {}, FAST)).content == b"hello world"
        async with client.stream(url, b"{}", {}, FAST) as reply:
            assert reply.status == 200
            assert b"".join([c async for c in reply.chunks()]) == b"hello world"
    await client.aclose()


async def test_a_connection_the_server_closed_is_replaced_transparently() -> None:
    # The server closes after each answer without saying so: the pooled connection is stale.
    server = RawServer(OK, close_after=True)
    client = PooledUpstream()
    async for url in serve(server):
        for _ in range(3):
            assert (await client.post(url, b"{}", {}, FAST)).content == b"ok"
            await asyncio.sleep(0.05)  # let the close arrive, as between real requests
        assert server.connections == 3
    await client.aclose()


async def test_first_byte_timeout_and_refused_connection() -> None:
    client = PooledUpstream()
    async for url in serve(RawServer(b"", silent=True)):
        with pytest.raises(AttemptFailed, match=r"no answer within 0\.5s") as caught:
            await client.post(url, b"{}", {}, FAST)
        assert caught.value.error.status == 504
    with pytest.raises(AttemptFailed, match="unreachable") as refused:
        await client.post("http://127.0.0.1:9/x", b"{}", {}, FAST)
    assert refused.value.error.status == 502 and refused.value.retryable
    await client.aclose()


class PacedServer(RawServer):
    """Answers each request of a connection after the next of ``delays`` seconds, counting the
    requests it holds at once."""

    def __init__(self, delays: Iterable[float]) -> None:
        super().__init__(OK)
        self.delays = delays
        self.open = self.most = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            for delay in self.delays:
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)
                self.open += 1
                self.most = max(self.most, self.open)
                await asyncio.sleep(delay)
                self.open -= 1
                writer.write(self.answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_max_connections_queues_the_other_requests() -> None:
    server = PacedServer(itertools.repeat(0.02))
    client = PooledUpstream(max_connections=2)
    async for url in serve(server):
        replies = await asyncio.gather(*(client.post(url, b"{}", {}, FAST) for _ in range(6)))
        assert [r.content for r in replies] == [b"ok"] * 6
        assert server.most == 2
    await client.aclose()


async def test_slots_are_handed_over_in_order_and_survive_cancelled_waiters() -> None:
    slots = Slots(1)
    assert slots.take() is None and slots.free == 0
    first, second, third = slots.take(), slots.take(), slots.take()
    assert first is not None and second is not None and third is not None
    order: list[str] = []

    async def wait(name: str, waiter: asyncio.Future[None]) -> None:
        await slots.turn(waiter)
        order.append(name)

    tasks = {name: asyncio.ensure_future(wait(name, w)) for name, w in
             (("first", first), ("second", second), ("third", third))}  # fmt: skip
    await asyncio.sleep(0)
    tasks["first"].cancel()  # gave up waiting: never handed a slot
    slots.give()  # to "second": the cancelled waiter is skipped
    tasks["second"].cancel()  # handed a slot, cancelled before it ran: the slot moves on
    await asyncio.wait_for(asyncio.gather(*tasks.values(), return_exceptions=True), 5)
    assert order == ["third"]
    slots.give()  # "third" is done with it
    assert slots.free == 1 and slots.take() is None


async def test_each_wait_keeps_its_own_deadline_on_a_reused_connection() -> None:
    # The connection keeps one timer across waits: a shorter wait after a longer one must
    # still end on time, and an earlier wait's timer firing during a longer wait must not.
    client = PooledUpstream()
    patient = Timeouts(connect=1, first_byte=5, total=10)
    short = Timeouts(connect=1, first_byte=0.3, total=10)
    server = PacedServer([0.0, 0.0, 0.6, 5.0])
    async for url in serve(server):
        assert (await client.post(url, b"{}", {}, patient)).status == 200  # timer at +5 s
        assert (await client.post(url, b"{}", {}, short)).status == 200  # re-armed: +0.3 s
        # That timer fires 0.3 s into this 0.6 s answer, which may take 5 s: no timeout.
        assert (await client.post(url, b"{}", {}, patient)).status == 200
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(AttemptFailed, match=r"no answer within 0\.3s"):
            await client.post(url, b"{}", {}, short)
        assert loop.time() - started < 2.5  # its own deadline, not the last wait's (+5 s)
    assert server.connections == 1
    await client.aclose()
