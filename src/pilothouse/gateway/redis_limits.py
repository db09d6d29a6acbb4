"""Limits shared by every gateway replica through Redis: one Lua script call per request.

The admission script runs the same GCRA checks as :class:`~pilothouse.gateway.limits.MemoryLimiter`
for all subjects of a request and charges them only if all admit it. Redis runs scripts one at a
time, so N replicas see one exact limit. Concurrency slots are members of a sorted set scored by
their start time; a slot whose holder died expires after ``lease`` seconds. Budget spend lives in
Redis counters per subject and period, seeded from the database totals the first time they are
read, so a Redis restart does not reset a budget.

Time comes from Redis (``TIME``) so replicas with skewed clocks agree; tests inject a clock.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from pilothouse.gateway.limits import (
    WINDOW,
    Admission,
    Clock,
    LimitPolicy,
    Period,
    Usage,
    budget_error,
    clamp_tokens,
    gcra_usage,
    period_end,
    period_start,
    rate_error,
    rate_headers,
    record_spend,
    tightest,
)

if TYPE_CHECKING:
    from pilothouse.gateway.spend import SpendLedger

#: Keys per subject in the admission script: request TAT, token TAT, running set, two spends.
_KEYS_PER_SUBJECT = 5
#: Arguments per subject: rpm, tpm, max_concurrent, budget a/b, seed a/b, spend TTL.
_ARGS_PER_SUBJECT = 8
_HEAD_ARGS = 4

ADMIT = """
local function num(x) return string.format('%.17g', x) end
local now = tonumber(ARGV[1])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local est = tonumber(ARGV[2])
local rid = ARGV[3]
local lease = tonumber(ARGV[4])
local window = 60.0
local n = #KEYS / 5
local plans = {}
for i = 0, n - 1 do
  local k = i * 5
  local a = 4 + i * 8
  local rpm = tonumber(ARGV[a + 1])
  local tpm = tonumber(ARGV[a + 2])
  local maxc = tonumber(ARGV[a + 3])
  for j = 0, 1 do
    local budget = tonumber(ARGV[a + 4 + j])
    if budget then
      local spent = tonumber(redis.call('GET', KEYS[k + 4 + j]))
      if not spent then
        spent = tonumber(ARGV[a + 6 + j]) or 0
        redis.call('SET', KEYS[k + 4 + j], num(spent), 'EX', tonumber(ARGV[a + 8]), 'NX')
      end
      if spent >= budget then
        return {'budget', tostring(i), tostring(j), num(spent), num(now)}
      end
    end
  end
  if maxc then
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 3], '-inf', now - lease)
    if redis.call('ZCARD', KEYS[k + 3]) >= maxc then
      return {'concurrency', tostring(i), '1', '0', num(now)}
    end
  end
  local plan = {}
  if rpm then
    local tat = tonumber(redis.call('GET', KEYS[k + 1])) or now
    if rpm <= 0 then return {'requests', tostring(i), num(window), num(tat), num(now)} end
    local interval = window / rpm
    local new = math.max(tat, now) + interval
    if new - now > window + interval / 2 then
      return {'requests', tostring(i), num(new - window - now), num(tat), num(now)}
    end
    plan.req = new
  end
  if tpm then
    local tat = tonumber(redis.call('GET', KEYS[k + 2])) or now
    if tpm <= 0 then return {'tokens', tostring(i), num(window), num(tat), num(now)} end
    local interval = window / tpm
    local cost = math.min(math.max(est, 0), tpm)
    local new = math.max(tat, now) + cost * interval
    if new - now > window + interval / 2 then
      return {'tokens', tostring(i), num(new - window - now), num(tat), num(now)}
    end
    plan.tok = new
  end
  plan.maxc = maxc
  plans[i + 1] = plan
end
local out = {'ok', '', '', '', num(now)}
for i = 0, n - 1 do
  local k = i * 5
  local plan = plans[i + 1]
  if plan.req then
    redis.call('SET', KEYS[k + 1], num(plan.req), 'PX', math.ceil((plan.req - now) * 1000) + 1000)
  end
  if plan.tok then
    redis.call('SET', KEYS[k + 2], num(plan.tok), 'PX', math.ceil((plan.tok - now) * 1000) + 1000)
  end
  if plan.maxc then
    redis.call('ZADD', KEYS[k + 3], now, rid)
    redis.call('PEXPIRE', KEYS[k + 3], math.ceil(lease * 1000))
  end
  table.insert(out, plan.req and num(plan.req) or '')
  table.insert(out, plan.tok and num(plan.tok) or '')
end
return out
"""

#: KEYS per subject: token TAT, day spend, month spend, running set. ARGV: the request id, then
#: per subject the TAT correction, the cost and whether to free the concurrency slot (1/0).
SETTLE = """
local rid = ARGV[1]
for i = 0, #KEYS / 4 - 1 do
  local k = i * 4
  local a = 1 + i * 3
  local delta = tonumber(ARGV[a + 1])
  local cost = tonumber(ARGV[a + 2])
  if delta ~= 0 and redis.call('EXISTS', KEYS[k + 1]) == 1 then
    redis.call('INCRBYFLOAT', KEYS[k + 1], delta)
  end
  if cost ~= 0 then
    for j = 2, 3 do
      if redis.call('EXISTS', KEYS[k + j]) == 1 then
        redis.call('INCRBYFLOAT', KEYS[k + j], cost)
      end
    end
  end
  if ARGV[a + 3] == '1' then
    redis.call('ZREM', KEYS[k + 4], rid)
  end
end
return 1
"""


class RedisLimiter:
    """Limits exact across replicas, kept in Redis under ``prefix``."""

    def __init__(
        self,
        redis_url: str,
        *,
        prefix: str = "ph:gw:",
        ledger: SpendLedger | None = None,
        clock: Clock | None = None,
        lease: float = 600.0,
    ) -> None:
        self.client: aioredis.Redis = aioredis.Redis.from_url(redis_url)
        self.prefix = prefix
        self.ledger = ledger
        self.clock = clock
        self.lease = lease
        self._admit = self.client.register_script(ADMIT)
        self._settle = self.client.register_script(SETTLE)
        self._releases: set[asyncio.Task[Any]] = set()

    def _now(self) -> float:
        return self.clock() if self.clock is not None else time.time()

    def _spend_key(self, subject: str, period: Period, now: float) -> str:
        return f"{self.prefix}spend:{subject}:{period}:{period_start(period, now).date()}"

    def _budget_slots(self, policy: LimitPolicy) -> list[tuple[Period, float] | None]:
        budgets: list[tuple[Period, float] | None] = list(policy.budgets()[:2])
        return budgets + [None] * (2 - len(budgets))

    async def admit(self, subject: str, policy: LimitPolicy, estimated_tokens: int) -> Admission:
        return await self.admit_all([(subject, policy)], estimated_tokens)

    async def admit_all(
        self, checks: Sequence[tuple[str, LimitPolicy]], estimated_tokens: int
    ) -> Admission:
        limited = [(s, p) for s, p in checks if not p.unlimited]
        if not limited:
            return Admission(subjects=tuple(checks), estimated_tokens=estimated_tokens)
        # The budget keys and seeds are named by the period of the caller's clock; a request at
        # a period boundary may be counted in either period, which is harmless.
        now = self._now()
        request_id = secrets.token_hex(8)
        keys: list[str] = []
        args: list[Any] = ["" if self.clock is None else repr(now), estimated_tokens]
        args += [request_id, self.lease]
        for subject, policy in limited:
            base = f"{self.prefix}{subject}:"
            slots = self._budget_slots(policy)
            keys += [base + "rq", base + "tk", base + "run"]
            keys += [self._spend_key(subject, s[0], now) if s else base + "-" for s in slots]
            args += [_opt(policy.rpm), _opt(policy.tpm), _opt(policy.max_concurrent)]
            args += [_opt(s[1]) if s else "" for s in slots]
            args += [repr(self._seed(subject, s[0])) if s else "" for s in slots]
            args.append(self._spend_ttl(now))
        reply = [_text(x) for x in await self._admit(keys=keys, args=args)]
        status, index, detail, value, server_now = reply[:5]
        now = float(server_now)
        if status != "ok":
            subject, policy = limited[int(index)]
            if status == "budget":
                period, budget = self._budget_slots(policy)[int(detail)] or ("day", 0.0)
                raise budget_error(subject, period, budget, float(value), now)
            if status == "concurrency":
                raise rate_error(subject, "concurrent requests", policy.max_concurrent or 0, 1, {})
            limit = (policy.rpm if status == "requests" else policy.tpm) or 0
            usage = gcra_usage(float(value), now, limit) if limit else None
            headers = (
                rate_headers(usage, None) if status == "requests" else rate_headers(None, usage)
            )
            raise rate_error(subject, status, limit, float(detail), headers)
        request_usages: list[Usage | None] = []
        token_usages: list[Usage | None] = []
        for i, (_, policy) in enumerate(limited):
            req, tok = reply[5 + 2 * i], reply[6 + 2 * i]
            if req and policy.rpm:
                request_usages.append(gcra_usage(float(req), now, policy.rpm))
            if tok and policy.tpm:
                token_usages.append(gcra_usage(float(tok), now, policy.tpm))
        admission = Admission(
            subjects=tuple(checks),
            estimated_tokens=estimated_tokens,
            headers=rate_headers(tightest(request_usages), tightest(token_usages)),
            request_id=request_id,
        )
        held = [f"{self.prefix}{s}:run" for s, p in limited if p.max_concurrent is not None]
        if held:
            admission._release = lambda: self._schedule_release(held, request_id)
        return admission

    def _seed(self, subject: str, period: Period) -> float:
        return self.ledger.spent(subject, period) if self.ledger is not None else 0.0

    def _spend_ttl(self, now: float) -> int:
        # Long enough to outlive the month it counts; short enough that old periods go away.
        return int(period_end("month", now).timestamp() - now) + 86_400

    def _schedule_release(self, keys: list[str], request_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._release_now(keys, request_id))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release_now(self, keys: list[str], request_id: str) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zrem(key, request_id)
            await pipe.execute()

    async def wait_released(self) -> None:
        """Wait for slot releases still on their way to Redis."""
        if self._releases:
            await asyncio.gather(*self._releases)

    async def running(self, subject: str) -> int:
        """Requests of ``subject`` in flight on all replicas."""
        return int(await self.client.zcard(f"{self.prefix}{subject}:run"))

    async def settle(
        self,
        admission: Admission,
        actual_tokens: int,
        cost_usd: float,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> None:
        if admission.settled:
            return
        admission.settled = True
        now = self._now()
        # The concurrency slots go back in the same round trip, unless already released.
        free = admission._release is not None
        keys: list[str] = []
        args: list[Any] = [admission.request_id]
        for subject, policy in admission.subjects:
            delta = 0.0
            if policy.tpm:
                charged = clamp_tokens(admission.estimated_tokens, policy.tpm)
                delta = (actual_tokens - charged) * WINDOW / policy.tpm
            budgets = policy.budgets()
            held = free and policy.max_concurrent is not None and not policy.unlimited
            if not delta and not (cost_usd and budgets) and not held:
                continue
            base = f"{self.prefix}{subject}:"
            keys += [base + "tk", self._spend_key(subject, "day", now)]
            keys += [self._spend_key(subject, "month", now), base + "run"]
            args += [repr(delta), repr(cost_usd if budgets else 0.0), "1" if held else "0"]
        if keys:
            await self._settle(keys=keys, args=args)
            if free:
                admission._release = None
        record_spend(self.ledger, admission, actual_tokens, cost_usd, input_tokens, output_tokens)

    async def aclose(self) -> None:
        await self.wait_released()
        await self.client.aclose()


def _opt(value: float | None) -> str:
    return "" if value is None else repr(value)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["RedisLimiter"]
