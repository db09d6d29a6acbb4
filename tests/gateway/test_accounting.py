"""Limits, budgets, cost, spend and cache in the request path, driven with the openai client."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import date
from typing import Any

import openai
import pytest
import redis

from pilothouse.gateway.accounting import Accounting, cache_ttl_of, estimate_tokens
from pilothouse.runtime import Runtime
from pilothouse.store import gateway as store
from pilothouse.store import identity as identity_store
from tests.conftest import free_port
from tests.gateway.conftest import GatewayFactory, Upstream, openai_model

MESSAGES: Any = [{"role": "user", "content": "Where is my refund?"}]


def test_rpm_limit_answers_429_with_retry_after_and_ratelimit_headers(
    make_gateway: GatewayFactory,
) -> None:
    gw = make_gateway()
    key, _ = gw.runtime.keys.create(1, "slow", ["gateway"], limits={"rpm": 2, "tpm": 100_000})
    client = gw.client(key)
    raw = client.chat.completions.with_raw_response.create(model="mock/echo", messages=MESSAGES)
    assert raw.headers["x-ratelimit-limit-requests"] == "2"
    assert raw.headers["x-ratelimit-remaining-requests"] == "1"
    assert raw.headers["x-ratelimit-limit-tokens"] == "100000"
    client.chat.completions.create(model="mock/echo", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="mock/echo", messages=MESSAGES)
    response = caught.value.response
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert caught.value.code == "rate_limited"
    # The admin key (no limits) is not affected.
    gw.client().chat.completions.create(model="mock/echo", messages=MESSAGES)


def test_project_limits_apply_to_every_key_of_the_project(make_gateway: GatewayFactory) -> None:
    gw = make_gateway()
    with gw.runtime.db.write() as conn:
        identity_store.update_project(conn, 1, settings={"limits": {"rpm": 1}})
    gw.client().chat.completions.create(model="mock/echo", messages=MESSAGES)
    key, _ = gw.runtime.keys.create(1, "other", ["gateway"])
    with pytest.raises(openai.RateLimitError, match="project:1"):
        gw.client(key).chat.completions.create(model="mock/echo", messages=MESSAGES)


async def test_max_concurrent_requests(make_gateway: GatewayFactory, upstream: Upstream) -> None:
    gw = make_gateway({"gpt": openai_model(upstream.url)})
    upstream.fake.delay = 0.5
    key, _ = gw.runtime.keys.create(1, "one-at-a-time", ["gateway"], limits={"max_concurrent": 1})
    client = gw.async_client(key)

    async def ask() -> str:
        try:
            await client.chat.completions.create(model="gpt", messages=MESSAGES)
        except openai.RateLimitError:
            return "429"
        return "ok"

    results = await asyncio.gather(ask(), ask())
    assert sorted(results) == ["429", "ok"]
    upstream.fake.delay = 0
    assert await ask() == "ok"  # the slot was freed
    await client.close()


def test_budget_exceeded_after_spend_and_spend_flushed(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    # $1 per million input tokens: each call costs a few millionths of a dollar.
    priced = openai_model(upstream.url, price={"input_per_mtok": 1.0, "output_per_mtok": 1.0})
    gw = make_gateway({"gpt": priced}, gateway_spend_flush_seconds=0.05)
    key, row = gw.runtime.keys.create(
        1, "budgeted", ["gateway"], limits={"budget_usd_day": 0.000001}
    )
    client = gw.client(key)
    client.chat.completions.create(model="gpt", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt", messages=MESSAGES)
    assert caught.value.code == "budget_exceeded"
    assert caught.value.type == "insufficient_quota"
    assert int(caught.value.response.headers["retry-after"]) > 0
    assert len(upstream.fake.seen) == 1  # the refused call never reached the upstream
    deadline = time.monotonic() + 10
    rows: list[store.SpendDelta] = []
    while time.monotonic() < deadline:
        with gw.runtime.db.read() as conn:
            rows = [r for r in store.spend_since(conn, date(2000, 1, 1)) if r.key_id]
        if rows:
            break
        time.sleep(0.05)
    (spent,) = [r for r in rows if r.key_id == row["id"]]
    assert spent.requests == 1 and spent.cost_usd > 0.000001
    assert spent.input_tokens > 0 and spent.output_tokens > 0


def test_cache_hit_skips_the_upstream_and_replays_streams(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    gw = make_gateway({"gpt": openai_model(upstream.url)})
    client = gw.client(default_headers={"x-pilothouse-cache": "on"})
    first = client.chat.completions.with_raw_response.create(model="gpt", messages=MESSAGES)
    assert first.headers["x-pilothouse-cache"] == "miss"
    second = client.chat.completions.with_raw_response.create(model="gpt", messages=MESSAGES)
    assert second.headers["x-pilothouse-cache"] == "hit"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert len(upstream.fake.seen) == 1
    # A stream of the same request is replayed from the cached answer.
    chunks = list(
        client.chat.completions.create(
            model="gpt", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == first.parse().choices[0].message.content
    assert chunks[-1].usage is not None
    assert len(upstream.fake.seen) == 1
    # Without the opt-in, or with a different question, the upstream answers.
    gw.client().chat.completions.create(model="gpt", messages=MESSAGES)
    client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "other"}])
    assert len(upstream.fake.seen) == 3


def test_streamed_answers_are_cached_for_later_requests(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    gw = make_gateway({"gpt": openai_model(upstream.url)}, gateway_cache_models="g*")
    client = gw.client()
    chunks = list(client.chat.completions.create(model="gpt", messages=MESSAGES, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    answer = client.chat.completions.with_raw_response.create(model="gpt", messages=MESSAGES)
    assert answer.headers["x-pilothouse-cache"] == "hit"
    assert answer.parse().choices[0].message.content == text
    assert len(upstream.fake.seen) == 1
    skipped = client.chat.completions.with_raw_response.create(
        model="gpt", messages=MESSAGES, extra_headers={"x-pilothouse-cache": "off"}
    )
    assert "x-pilothouse-cache" not in skipped.headers
    assert len(upstream.fake.seen) == 2


def test_cache_backend_database_survives_a_restart(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    gw = make_gateway({"gpt": openai_model(upstream.url)}, gateway_cache_backend="database")
    key, _ = gw.runtime.keys.create(1, "cached", ["gateway"], limits={"cache_ttl": 60})
    gw.client(key).chat.completions.create(model="gpt", messages=MESSAGES)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with gw.runtime.db.read() as conn:
            if conn.execute(store.gateway_cache.select()).first() is not None:
                break
        time.sleep(0.05)
    raw = gw.client(key).chat.completions.with_raw_response.create(model="gpt", messages=MESSAGES)
    assert raw.headers["x-pilothouse-cache"] == "hit"
    assert len(upstream.fake.seen) == 1


def test_token_estimate_and_cache_header_parsing():
    assert estimate_tokens({"max_tokens": 100, "n": 2}, 400) == 300
    assert estimate_tokens({"max_completion_tokens": 10, "max_tokens": True}, 0) == 10
    assert estimate_tokens({"max_tokens": "x"}, 40) == 10
    assert cache_ttl_of("on", 60) == 60
    assert cache_ttl_of("30", 60) == 30
    assert cache_ttl_of("3600", 60) == 60  # a request cannot extend the configured TTL
    assert cache_ttl_of("nan", 60) is None
    assert cache_ttl_of("off", 60) is None
    assert cache_ttl_of("no-store", 60) is None
    assert cache_ttl_of("0", 60) is None


def test_two_gateway_replicas_share_one_redis_limit(
    make_gateway: GatewayFactory, redis_url: str
) -> None:
    """Two app instances (as two replicas) on one Redis admit exactly the limit together."""
    prefix = f"test:{secrets.token_hex(6)}:"
    shared = {"redis_url": redis_url, "gateway_redis_prefix": prefix}
    first = make_gateway(**shared)
    second = make_gateway(**shared)
    # One request every 10 s after a burst of 6: the run below takes far less than 10 s.
    key, _ = first.runtime.keys.create(1, "shared", ["gateway"], limits={"rpm": 6})
    clients = [first.client(key), second.client(key)]
    admitted = refused = 0
    for i in range(20):
        try:
            clients[i % 2].chat.completions.create(model="mock/echo", messages=MESSAGES)
        except openai.RateLimitError:
            refused += 1
        else:
            admitted += 1
    assert (admitted, refused) == (6, 14)
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*"))
        assert keys  # the state lives in Redis, not in either process
        client.delete(*keys)
    finally:
        client.close()


async def test_stale_project_limits_answer_while_one_read_refreshes_them(runtime: Runtime) -> None:
    accounting = Accounting(runtime)
    accounting._project_ttl = 0.0  # every lookup finds the limits stale
    assert (await accounting.project_policy(1)).rpm is None
    with runtime.db.write() as conn:
        identity_store.update_project(conn, 1, settings={"limits": {"rpm": 5}})
    # Stale: the old limits answer at once; one refresh starts, not one per request.
    assert (await accounting.project_policy(1)).rpm is None
    assert (await accounting.project_policy(1)).rpm is None
    assert len(accounting._background) == 1
    await asyncio.gather(*accounting._background)
    accounting._project_ttl = 60.0
    assert (await accounting.project_policy(1)).rpm == 5
    with runtime.db.write() as conn:
        identity_store.update_project(conn, 1, settings={"limits": {"rpm": 7}})
    assert (await accounting.project_policy(1)).rpm == 5  # still fresh
    accounting.forget_project(1)
    assert (await accounting.project_policy(1)).rpm == 7
    await accounting.stop()


def test_replicas_share_the_redis_cache(
    make_gateway: GatewayFactory, upstream: Upstream, redis_url: str
) -> None:
    prefix = f"test:{secrets.token_hex(6)}:"
    shared = {"redis_url": redis_url, "gateway_redis_prefix": prefix}
    models = {"gpt": openai_model(upstream.url)}
    first = make_gateway(models, gateway_cache_backend="redis", **shared)
    second = make_gateway(models, gateway_cache_backend="redis", **shared)
    headers = {"x-pilothouse-cache": "on"}
    miss = first.client(default_headers=headers).chat.completions.with_raw_response.create(
        model="gpt", messages=MESSAGES
    )
    assert miss.headers["x-pilothouse-cache"] == "miss"
    client = redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 10  # the write happens after the answer is sent
        while time.monotonic() < deadline and not list(client.scan_iter(match=prefix + "cache:*")):
            time.sleep(0.02)
        hit = second.client(default_headers=headers).chat.completions.with_raw_response.create(
            model="gpt", messages=MESSAGES
        )
        assert hit.headers["x-pilothouse-cache"] == "hit"
        assert len(upstream.fake.seen) == 1
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def test_requests_pass_when_the_limits_redis_is_down(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    key, _ = gw.runtime.keys.create(1, "limited", ["gateway"], limits={"rpm": 1})
    client = gw.client(key)
    for _ in range(2):  # fails open: no 429 and no 500 while Redis is unreachable
        answer = client.chat.completions.create(model="mock/echo", messages=MESSAGES)
        assert answer.choices[0].message.content == "Where is my refund?"
