"""Spend per key and project: counted in memory on every call, written to the database in batches.

:meth:`SpendLedger.add` only touches dicts (the hot path never waits on the database). A periodic
task (:meth:`SpendLedger.start`) upserts the accumulated deltas, one row per project, key and UTC
day, every ``gateway_spend_flush_seconds``; a failed flush keeps the deltas for the next one.
:meth:`SpendLedger.load` reads the current month back at startup, so budgets survive restarts.
Monthly spend is the sum of the month's daily rows.

With Redis, replicas share budget counters in Redis (see
:mod:`pilothouse.gateway.redis_limits`); each replica still flushes its own deltas here, so the
database holds the sum of all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import date

from pilothouse.gateway.limits import Clock, Period, period_start
from pilothouse.store import Database
from pilothouse.store import gateway as store

log = logging.getLogger(__name__)

#: A running total: (subject, period, period start).
Slot = tuple[str, Period, date]


class SpendLedger:
    """Running USD spend of every key and project in the current day and month."""

    def __init__(
        self,
        db: Database | None = None,
        *,
        flush_seconds: float = 5.0,
        clock: Clock = time.time,
    ) -> None:
        self.db = db
        self.flush_seconds = flush_seconds
        self.clock = clock
        #: running totals in USD
        self._totals: dict[Slot, float] = {}
        #: (project_id, key_id, day) -> the totals its spend counts in (built once a day)
        self._slots: dict[tuple[int, int, date], tuple[Slot, ...]] = {}
        #: (project_id, key_id, day) -> delta not yet in the database
        self._pending: dict[tuple[int, int, date], store.SpendDelta] = {}
        self._task: asyncio.Task[None] | None = None
        self._today: tuple[float, float, date, date] = (0.0, 0.0, date.min, date.min)

    def _starts(self) -> tuple[date, date]:
        """The current day and month (recomputed only when the day changes)."""
        now = self.clock()
        since, until, day, month = self._today
        if since <= now < until:
            return day, month
        start = period_start("day", now)
        day, month = start.date(), period_start("month", now).date()
        self._today = (start.timestamp(), start.timestamp() + 86_400, day, month)
        return day, month

    def add(
        self,
        project_id: int,
        key_id: int | None,
        cost: float,
        in_tokens: int = 0,
        out_tokens: int = 0,
    ) -> None:
        """Count one call's spend (O(1), memory only)."""
        day, month = self._starts()
        row = (project_id, key_id or store.NO_KEY, day)
        slots = self._slots.get(row)
        if slots is None:
            slots = self._slots[row] = _slots(*row, day, month)
        _charge(self._totals, slots, cost)
        delta = self._pending.get(row)
        if delta is None:
            delta = self._pending[row] = store.SpendDelta(project_id, row[1], day)
        delta.cost_usd += cost
        delta.input_tokens += in_tokens
        delta.output_tokens += out_tokens
        delta.requests += 1

    def spent(self, subject: str, period: Period) -> float:
        """USD spent by ``subject`` (``key:<id>`` or ``project:<id>``) in the current period."""
        day, month = self._starts()
        return self._totals.get((subject, period, day if period == "day" else month), 0.0)

    @property
    def pending(self) -> int:
        """Rows waiting for the next flush."""
        return len(self._pending)

    def load(self) -> None:
        """Read this month's spend from the database (call once at startup, before serving)."""
        if self.db is None:
            return
        day, month = self._starts()
        with self.db.read() as conn:
            rows = store.spend_since(conn, month)
        totals: dict[Slot, float] = {}
        # Spend counted since the process started but not yet flushed stays on top.
        for row in [*rows, *self._pending.values()]:
            slots = _slots(row.project_id, row.key_id, row.period_start, day, month)
            _charge(totals, slots, row.cost_usd)
        self._totals = totals

    async def flush(self) -> int:
        """Write the pending deltas in one transaction; returns the rows written."""
        if not self._pending or self.db is None:
            return 0
        batch, self._pending = self._pending, {}
        try:
            written = await asyncio.to_thread(self._write, list(batch.values()))
        except Exception:
            # Keep the deltas (merged with what arrived meanwhile) for the next attempt.
            for row, delta in batch.items():
                newer = self._pending.get(row)
                if newer is not None:
                    delta.cost_usd += newer.cost_usd
                    delta.input_tokens += newer.input_tokens
                    delta.output_tokens += newer.output_tokens
                    delta.requests += newer.requests
                self._pending[row] = delta
            raise
        self._forget_old_periods()
        return written

    def _write(self, deltas: list[store.SpendDelta]) -> int:
        assert self.db is not None
        with self.db.write() as conn:
            return store.add_spend(conn, deltas)

    def _forget_old_periods(self) -> None:
        day, month = self._starts()
        for slot in [s for s in self._totals if s[2] < (day if s[1] == "day" else month)]:
            del self._totals[slot]
        for row in [r for r in self._slots if r[2] < day]:
            del self._slots[row]

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except Exception:  # noqa: BLE001 - the database may be down; retry next period
                log.warning("spend flush failed; %d rows kept for the next one", self.pending)

    def start(self) -> None:
        """Start the periodic flush on the running event loop."""
        if self._task is None and self.db is not None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the periodic flush and write what is left."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()


def _slots(project_id: int, key_id: int, on_day: date, day: date, month: date) -> tuple[Slot, ...]:
    """The running totals (day and month, of the project and the key) that spend on
    ``on_day`` counts in."""
    if on_day < month:
        return ()
    subjects = [f"project:{project_id}"]
    if key_id != store.NO_KEY:
        subjects.append(f"key:{key_id}")
    periods: list[tuple[Period, date]] = [("month", month)]
    if on_day == day:
        periods.append(("day", day))
    return tuple((subject, period, start) for subject in subjects for period, start in periods)


def _charge(totals: dict[Slot, float], slots: tuple[Slot, ...], cost: float) -> None:
    """Add ``cost`` to the running totals of ``slots``."""
    if cost:
        for slot in slots:
            totals[slot] = totals.get(slot, 0.0) + cost


__all__ = ["SpendLedger"]
