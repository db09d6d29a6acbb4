"""A deadline that moves, kept by one timer: it expires at the deadline last set, not at an
earlier or a later one, and never once cleared or stopped."""

from __future__ import annotations

import asyncio

from pilothouse.timers import Deadline


async def test_a_deadline_expires_at_the_one_last_set():
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    deadline = Deadline(loop, lambda: fired.append(loop.time()))
    start = loop.time()
    deadline.set(start + 0.05)
    deadline.set(start + 0.25)  # moved later: the first timer fires early and sleeps on
    await asyncio.sleep(0.15)
    assert fired == []
    await asyncio.sleep(0.2)
    assert len(fired) == 1 and fired[0] >= start + 0.25
    assert deadline.when is None  # expired once


async def test_a_sooner_deadline_rearms_and_a_cleared_one_never_expires():
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    deadline = Deadline(loop, lambda: fired.append("expired"))
    start = loop.time()
    deadline.set(start + 5)
    deadline.set(start + 0.05)  # sooner: the timer armed for +5 s would be too late
    await asyncio.sleep(0.15)
    assert fired == ["expired"]
    deadline.set(loop.time() + 0.05)
    deadline.clear()  # e.g. the answer came: the timer lapses
    await asyncio.sleep(0.15)
    deadline.set(loop.time() + 0.05)
    deadline.stop()  # the owner closes
    await asyncio.sleep(0.15)
    assert fired == ["expired"]
