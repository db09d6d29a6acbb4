"""Spend accumulated in memory, flushed in batches, reloaded after a restart (both databases)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from pilothouse.errors import BudgetExceeded
from pilothouse.gateway.limits import LimitPolicy, MemoryLimiter, period_start
from pilothouse.gateway.spend import SpendLedger
from pilothouse.store import Database, migrate
from pilothouse.store import gateway as store

T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate.upgrade(database)
    try:
        yield database
    finally:
        database.close()


def rows(db: Database) -> list[store.SpendDelta]:
    with db.read() as conn:
        return sorted(
            store.spend_since(conn, period_start("month", T0 - 40 * 86_400).date()),
            key=lambda r: (r.period_start, r.project_id, r.key_id),
        )


async def test_spend_is_written_in_one_batch_per_flush(db: Database):
    clock = Clock()
    ledger = SpendLedger(db, clock=clock)
    for _ in range(100):
        ledger.add(1, 5, 0.01, 100, 20)
    ledger.add(1, None, 0.5, 10, 1)  # spend without a key
    assert rows(db) == []  # nothing written per request
    assert ledger.pending == 2
    assert await ledger.flush() == 2
    assert ledger.pending == 0
    day = period_start("day", T0).date()
    written = rows(db)
    assert [(r.project_id, r.key_id, r.period_start) for r in written] == [
        (1, store.NO_KEY, day),
        (1, 5, day),
    ]
    keyed = written[1]
    assert keyed.cost_usd == pytest.approx(1.0)
    assert (keyed.input_tokens, keyed.output_tokens, keyed.requests) == (10_000, 2000, 100)
    # A second flush adds to the same row instead of inserting another.
    ledger.add(1, 5, 0.25, 1, 1)
    assert await ledger.flush() == 1
    assert await ledger.flush() == 0
    keyed = rows(db)[1]
    assert keyed.cost_usd == pytest.approx(1.25) and keyed.requests == 101


async def test_budgets_survive_a_restart(db: Database):
    clock = Clock()
    ledger = SpendLedger(db, clock=clock)
    ledger.add(2, 7, 3.0)
    clock.now -= 86_400  # yesterday, same month
    ledger.add(2, 7, 1.0)
    clock.now = T0
    await ledger.flush()
    # Last month's spend does not count.
    with db.write() as conn:
        old = store.SpendDelta(2, 7, period_start("day", T0 - 20 * 86_400).date(), 50.0)
        store.add_spend(conn, [old])

    restarted = SpendLedger(db, clock=clock)
    restarted.add(2, 8, 0.5)  # counted before load, not yet flushed: kept on top
    restarted.load()
    assert restarted.spent("key:7", "day") == pytest.approx(3.0)
    assert restarted.spent("key:7", "month") == pytest.approx(4.0)
    assert restarted.spent("project:2", "month") == pytest.approx(4.5)
    assert restarted.spent("key:8", "day") == pytest.approx(0.5)
    limiter = MemoryLimiter(restarted, clock=clock)
    with pytest.raises(BudgetExceeded, match=r"Budget of \$3.50 per month"):
        await limiter.admit("key:7", LimitPolicy.from_limits({"budget_usd_month": 3.5}), 0)


async def test_a_failed_flush_keeps_the_spend_for_the_next(db: Database):
    ledger = SpendLedger(db, clock=Clock())
    ledger.add(1, 1, 1.0, 10, 10)
    with db.write() as conn:
        conn.execute(sa.text("DROP TABLE gateway_spend"))
    with pytest.raises(sa.exc.DBAPIError):
        await ledger.flush()
    ledger.add(1, 1, 2.0, 5, 5)  # arrives while the database is down
    assert ledger.pending == 1
    with db.write() as conn:
        store.gateway_spend.create(conn)
    assert await ledger.flush() == 1
    (row,) = rows(db)
    assert row.cost_usd == pytest.approx(3.0) and row.requests == 2 and row.input_tokens == 15


async def test_periodic_flush_and_final_flush_on_stop(db: Database):
    ledger = SpendLedger(db, flush_seconds=0.01, clock=Clock())
    ledger.start()
    ledger.add(1, 1, 1.0)
    for _ in range(500):
        if rows(db):
            break
        await asyncio.sleep(0.01)
    assert rows(db)[0].cost_usd == pytest.approx(1.0)
    ledger.add(1, 1, 1.0)
    await ledger.stop()
    assert rows(db)[0].cost_usd == pytest.approx(2.0)


def test_new_periods_start_at_zero():
    clock = Clock()
    ledger = SpendLedger(clock=clock)
    ledger.add(1, 1, 2.0)
    assert ledger.spent("key:1", "day") == 2.0
    clock.now += 86_400
    assert ledger.spent("key:1", "day") == 0.0
    assert ledger.spent("key:1", "month") == 2.0
    clock.now += 31 * 86_400
    assert ledger.spent("key:1", "month") == 0.0
