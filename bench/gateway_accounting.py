"""Microbenchmark of the gateway's per-request accounting: limits, cost and metrics.

Run: python bench/gateway_accounting.py [redis_url]. Prints microseconds per request for
the memory limiter (admit + settle + release for a key and its project, with RPM, TPM,
concurrency and a budget), for cost lookup, for one metrics observation and, when a Redis URL
is given, for the Redis limiter (one admission script and one settle script round trip).
"""

from __future__ import annotations

import asyncio
import sys
import time

from pilothouse.gateway import cost
from pilothouse.gateway.limits import LimitPolicy, MemoryLimiter
from pilothouse.gateway.metrics import GatewayMetrics
from pilothouse.gateway.spend import SpendLedger

N = 50_000
KEY = LimitPolicy(rpm=10**9, tpm=10**12, max_concurrent=1000, budget_usd=10**9)
PROJECT = LimitPolicy(rpm=10**9)


async def limiter_us(limiter: object, n: int) -> float:
    checks = [("key:1", KEY), ("project:1", PROJECT)]
    start = time.perf_counter()
    for _ in range(n):
        admission = await limiter.admit_all(checks, 100)  # type: ignore[attr-defined]
        await limiter.settle(admission, 120, 0.0001, input_tokens=100, output_tokens=20)  # type: ignore[attr-defined]
        admission.release()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    memory = asyncio.run(limiter_us(MemoryLimiter(SpendLedger()), N))
    print(f"memory limiter admit+settle+release: {memory:.1f} us/request")
    start = time.perf_counter()
    for _ in range(N):
        cost.price("openai", "gpt-4o-mini", 100, 20)
    print(f"cost.price (memoized): {(time.perf_counter() - start) / N * 1e6:.2f} us")
    metrics = GatewayMetrics()
    start = time.perf_counter()
    for _ in range(N):
        metrics.observe_request(
            model="m",
            deployment="m#0",
            status_code=200,
            latency_s=0.01,
            ttft_s=0.005,
            tpot_s=0.001,
            overhead_s=0.0002,
            input_tokens=100,
            output_tokens=20,
            cost_usd=0.0001,
        )
    print(f"metrics observe_request: {(time.perf_counter() - start) / N * 1e6:.1f} us")
    if len(sys.argv) > 1:
        from pilothouse.gateway.redis_limits import RedisLimiter

        async def redis_run() -> float:
            limiter = RedisLimiter(sys.argv[1], prefix="bench:limits:", ledger=SpendLedger())
            try:
                await limiter_us(limiter, 100)  # warm-up: scripts loaded, connection open
                return await limiter_us(limiter, 5000)
            finally:
                keys = [k async for k in limiter.client.scan_iter(match="bench:limits:*")]
                if keys:
                    await limiter.client.delete(*keys)
                await limiter.aclose()

        print(f"redis limiter admit+settle+release: {asyncio.run(redis_run()):.1f} us/request")


if __name__ == "__main__":
    main()
