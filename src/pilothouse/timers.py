"""A deadline that moves often, kept by one event-loop timer.

Arming a timer and cancelling it costs about 1% of the CPU of a proxied gateway call, and both
ends of a call had one per request: the server's keep-alive timer and the upstream pool's
first-byte timer. A :class:`Deadline` keeps its timer across moves instead: setting a deadline
re-arms only when the timer would fire too late (or is gone), clearing one leaves the timer to
lapse, and a timer that fires before the current deadline sleeps on until it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Deadline:
    """Calls ``expired`` once the loop time reaches the deadline last set and not cleared."""

    def __init__(self, loop: asyncio.AbstractEventLoop, expired: Callable[[], None]) -> None:
        self.loop = loop
        self.expired = expired
        self.when: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def set(self, when: float) -> None:
        """Expire at loop time ``when`` (instead of any earlier deadline)."""
        self.when = when
        if self._timer is None or self._timer_at > when:
            self._arm(when)

    def clear(self) -> None:
        """No deadline for now; the timer lapses on its own (or serves the next one)."""
        self.when = None

    def stop(self) -> None:
        """No deadline and no timer (the owner is closing)."""
        self.when = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(when, self._fire)
        self._timer_at = when

    def _fire(self) -> None:
        self._timer = None
        when = self.when
        if when is None:
            return  # cleared: the next set arms a timer again
        if self.loop.time() >= when:
            self.when = None
            self.expired()
        else:
            self._arm(when)


__all__ = ["Deadline"]
