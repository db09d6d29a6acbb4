"""Rate limits, concurrency and budgets on the memory and Redis backends."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from pilothouse.errors import BudgetExceeded, ConfigError, RateLimited
from pilothouse.gateway.limits import (
    LimitPolicy,
    MemoryLimiter,
    format_reset,
    make_limiter,
    period_end,
)
from pilothouse.gateway.redis_limits import RedisLimiter
from pilothouse.gateway.spend import SpendLedger
from pilothouse.settings import load_settings

T0 = 1_800_000_000.0  # a fixed instant; tests move time by hand


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Any]]:
    """Build limiters of one backend; Redis ones share a per-test key prefix."""
    prefix = f"test:{secrets.token_hex(6)}:"
    made: list[RedisLimiter] = []

    def build(clock: Clock, ledger: SpendLedger | None = None) -> Any:
        if request.param == "memory":
            return MemoryLimiter(ledger, clock=clock)
        url = request.getfixturevalue("redis_url")
        limiter = RedisLimiter(url, prefix=prefix, ledger=ledger, clock=clock)
        made.append(limiter)
        return limiter

    yield build
    for limiter in made:
        keys = [k async for k in limiter.client.scan_iter(match=prefix + "*")]
        if keys:
            await limiter.client.delete(*keys)
        await limiter.aclose()


async def admitted(limiter: Any, subject: str, policy: LimitPolicy, n: int, tokens: int = 0) -> int:
    count = 0
    for _ in range(n):
        try:
            await limiter.admit(subject, policy, tokens)
        except RateLimited:
            continue
        count += 1
    return count


def test_policy_from_limits_dict():
    policy = LimitPolicy.from_limits(
        {"rpm": 60, "tpm": "1000", "max_concurrent": 2, "budget_usd_day": 5, "other": 1}
    )
    assert policy == LimitPolicy(rpm=60, tpm=1000, max_concurrent=2, budget_usd=5.0)
    assert policy.budgets() == (("day", 5.0),)
    monthly = LimitPolicy.from_limits({"budget_usd_month": 100})
    assert monthly.budgets() == (("month", 100.0),)
    both = LimitPolicy.from_limits({"budget_usd_day": 1, "budget_usd_month": 20})
    assert both.budgets() == (("day", 1.0), ("month", 20.0))
    assert LimitPolicy.from_limits({}).unlimited
    assert LimitPolicy.from_limits({"rpm": None, "tpm": -1, "max_concurrent": True}).unlimited


def test_reset_durations_read_like_openais():
    assert format_reset(0.02) == "20ms"
    assert format_reset(1) == "1s"
    assert format_reset(360) == "6m0s"
    assert format_reset(7.5) == "7.5s"
    assert format_reset(3725) == "1h2m5s"


async def test_rpm_admits_exactly_the_limit_then_429_with_retry_after(make):
    clock = Clock()
    limiter = make(clock)
    policy = LimitPolicy(rpm=7)
    first = await limiter.admit("key:1", policy, 0)
    assert first.headers["x-ratelimit-limit-requests"] == "7"
    assert first.headers["x-ratelimit-remaining-requests"] == "6"
    assert await admitted(limiter, "key:1", policy, 10) == 6
    with pytest.raises(RateLimited) as caught:
        await limiter.admit("key:1", policy, 0)
    error = caught.value
    assert error.status == 429
    assert error.retry_after == pytest.approx(60 / 7)
    headers = error.headers()
    assert headers["Retry-After"] == "9"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert "Rate limit reached for key:1" in error.detail
    # One emission interval later exactly one more request fits.
    clock.now += 60 / 7
    assert await admitted(limiter, "key:1", policy, 3) == 1
    # Another subject has its own budget.
    assert await admitted(limiter, "key:2", policy, 8) == 7


async def test_tpm_charges_the_estimate_and_settles_the_real_count(make):
    clock = Clock()
    limiter = make(clock)
    policy = LimitPolicy(tpm=1000)
    big = await limiter.admit("key:1", policy, 600)
    assert big.headers["x-ratelimit-remaining-tokens"] == "400"
    with pytest.raises(RateLimited) as caught:
        await limiter.admit("key:1", policy, 500)
    assert caught.value.retry_after == pytest.approx(6.0)  # 100 tokens at 1000/min
    assert caught.value.headers()["x-ratelimit-limit-tokens"] == "1000"
    # The call used only 100 tokens: the other 500 come back.
    await limiter.settle(big, 100, 0.0)
    second = await limiter.admit("key:1", policy, 500)
    assert second.headers["x-ratelimit-remaining-tokens"] == "400"
    # Settling twice changes nothing.
    await limiter.settle(big, 100, 0.0)
    with pytest.raises(RateLimited):
        await limiter.admit("key:1", policy, 401)
    # A request larger than the whole limit waits for a full bucket instead of never passing.
    clock.now += 60
    await limiter.admit("key:1", policy, 5000)


async def test_max_concurrent_until_released(make):
    limiter = make(Clock())
    policy = LimitPolicy(max_concurrent=2)
    a = await limiter.admit("key:1", policy, 0)
    b = await limiter.admit("key:1", policy, 0)
    with pytest.raises(RateLimited, match="concurrent"):
        await limiter.admit("key:1", policy, 0)
    a.release()
    a.release()  # idempotent: frees one slot only
    if isinstance(limiter, RedisLimiter):
        await limiter.wait_released()
    c = await limiter.admit("key:1", policy, 0)
    with pytest.raises(RateLimited):
        await limiter.admit("key:1", policy, 0)
    b.release()
    await limiter.settle(c, 0, 0.0)  # settling frees the slot too, without release()

    async def running() -> int:
        if isinstance(limiter, RedisLimiter):
            await limiter.wait_released()
            return await limiter.running("key:1")
        return int(limiter.running("key:1"))

    assert await running() == 0
    c.release()  # releasing afterwards changes nothing
    d = await limiter.admit("key:1", policy, 0)
    assert await running() == 1
    c.release()
    assert await running() == 1
    d.release()
    assert await running() == 0


async def test_a_refusal_by_one_subject_charges_none(make):
    limiter = make(Clock())
    key = LimitPolicy(rpm=5, max_concurrent=10)
    project = LimitPolicy(rpm=2)
    checks = [("key:1", key), ("project:1", project)]
    await limiter.admit_all(checks, 0)
    admission = await limiter.admit_all(checks, 0)
    assert admission.headers["x-ratelimit-remaining-requests"] == "0"  # the tighter subject
    for _ in range(3):
        with pytest.raises(RateLimited, match="project:1"):
            await limiter.admit_all(checks, 0)
    # The key was charged only for the two admitted requests.
    assert await admitted(limiter, "key:1", key, 5) == 3


async def test_budget_exceeded_until_the_period_resets(make):
    clock = Clock()
    ledger = SpendLedger(clock=clock)
    limiter = make(clock, ledger)
    key = LimitPolicy(budget_usd=1.0)
    checks = [("key:7", key), ("project:3", LimitPolicy())]
    first = await limiter.admit_all(checks, 0)
    await limiter.settle(first, 10, 0.6, input_tokens=8, output_tokens=2)
    assert ledger.spent("key:7", "day") == pytest.approx(0.6)
    assert ledger.spent("project:3", "month") == pytest.approx(0.6)
    second = await limiter.admit_all(checks, 0)  # 0.6 < 1.0: still allowed
    await limiter.settle(second, 10, 0.6)
    with pytest.raises(BudgetExceeded) as caught:
        await limiter.admit_all(checks, 0)
    error = caught.value
    assert error.status == 429 and error.code == "budget_exceeded"
    assert error.retry_after == pytest.approx(period_end("day", clock.now).timestamp() - clock.now)
    # Other keys of the project are not affected; the next day starts afresh.
    await limiter.admit_all([("key:8", key), ("project:3", LimitPolicy())], 0)
    clock.now = period_end("day", clock.now).timestamp() + 1
    await limiter.admit_all(checks, 0)


async def test_monthly_budget(make):
    clock = Clock()
    ledger = SpendLedger(clock=clock)
    limiter = make(clock, ledger)
    policy = LimitPolicy.from_limits({"budget_usd_day": 10, "budget_usd_month": 1})
    first = await limiter.admit_all([("key:1", policy), ("project:1", LimitPolicy())], 0)
    await limiter.settle(first, 0, 1.5)
    clock.now += 86_400
    if clock.now >= period_end("month", T0).timestamp():
        pytest.skip("T0 is the last day of a month")
    with pytest.raises(BudgetExceeded, match="per month"):
        await limiter.admit("key:1", policy, 0)


async def test_redis_replicas_share_one_exact_limit(redis_url: str):
    """Two limiters (as two gateway replicas) on one Redis admit exactly the limit together."""
    prefix = f"test:{secrets.token_hex(6)}:"
    clock = Clock()
    a = RedisLimiter(redis_url, prefix=prefix, clock=clock)
    b = RedisLimiter(redis_url, prefix=prefix, clock=clock)
    policy = LimitPolicy(rpm=50, tpm=10_000)
    try:

        async def hammer(limiter: RedisLimiter) -> int:
            return await admitted(limiter, "key:1", policy, 60, tokens=10)

        counts = await asyncio.gather(hammer(a), hammer(b), hammer(a), hammer(b))
        assert sum(counts) == 50
        assert all(c > 0 for c in counts)
        # After 6 s, 5 more requests (one every 1.2 s) are shared between the replicas.
        clock.now += 6
        later = await asyncio.gather(hammer(a), hammer(b))
        assert sum(later) == 5
    finally:
        keys = [k async for k in a.client.scan_iter(match=prefix + "*")]
        if keys:
            await a.client.delete(*keys)
        await a.aclose()
        await b.aclose()


async def test_redis_budget_shared_and_seeded_from_the_ledger(redis_url: str):
    prefix = f"test:{secrets.token_hex(6)}:"
    clock = Clock()
    ledger_a, ledger_b = SpendLedger(clock=clock), SpendLedger(clock=clock)
    ledger_a.add(1, 9, 0.5)  # spend loaded from the database before Redis knew the key
    a = RedisLimiter(redis_url, prefix=prefix, ledger=ledger_a, clock=clock)
    b = RedisLimiter(redis_url, prefix=prefix, ledger=ledger_b, clock=clock)
    policy = LimitPolicy(budget_usd=1.0)
    try:
        admission = await a.admit("key:9", policy, 0)  # seeds Redis with 0.5
        await a.settle(admission, 0, 0.3)
        admission = await b.admit("key:9", policy, 0)  # replica b sees 0.8 and admits
        await b.settle(admission, 0, 0.3)
        with pytest.raises(BudgetExceeded):
            await a.admit("key:9", policy, 0)
        with pytest.raises(BudgetExceeded):
            await b.admit("key:9", policy, 0)
    finally:
        keys = [k async for k in a.client.scan_iter(match=prefix + "*")]
        if keys:
            await a.client.delete(*keys)
        await a.aclose()
        await b.aclose()


async def test_redis_limiter_uses_redis_time_without_a_clock(redis_url: str):
    prefix = f"test:{secrets.token_hex(6)}:"
    limiter = RedisLimiter(redis_url, prefix=prefix)
    try:
        policy = LimitPolicy(rpm=2)
        assert await admitted(limiter, "key:1", policy, 3) == 2
    finally:
        keys = [k async for k in limiter.client.scan_iter(match=prefix + "*")]
        if keys:
            await limiter.client.delete(*keys)
        await limiter.aclose()


async def test_make_limiter_follows_the_settings(tmp_path):
    memory = make_limiter(load_settings({"data_dir": tmp_path}, environ={}))
    assert isinstance(memory, MemoryLimiter)
    with pytest.raises(ConfigError):
        make_limiter(load_settings({"gateway_limits_backend": "redis"}, environ={}))
    shared = make_limiter(load_settings({"redis_url": "redis://127.0.0.1:6379/0"}, environ={}))
    assert isinstance(shared, RedisLimiter)
    await shared.aclose()


async def test_a_zero_budget_refuses_even_without_a_spend_ledger():
    limiter = MemoryLimiter(None, clock=Clock())
    with pytest.raises(BudgetExceeded):
        await limiter.admit("key:1", LimitPolicy(budget_usd=0.0), 10)
    assert (await limiter.admit("key:1", LimitPolicy(budget_usd=1.0), 10)).headers == {}
