"""Exact-match response cache: keys, hit/miss/TTL on each backend, stream replay."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from pilothouse.gateway.cache import (
    DatabaseCache,
    MemoryCache,
    RedisCache,
    assemble_chunks,
    cache_key,
    make_cache,
    replay_as_chunks,
)
from pilothouse.settings import load_settings
from pilothouse.store import Database, migrate


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "hi"}],
    "temperature": 0,
}

RESPONSE: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def test_cache_key_ignores_order_and_fields_that_do_not_change_the_answer():
    key = cache_key(1, BODY, "chat")
    reordered = {"temperature": 0, "messages": BODY["messages"], "model": "gpt-4o-mini"}
    assert cache_key(1, reordered, "chat") == key
    noisy = {**BODY, "stream": True, "stream_options": {"include_usage": True}, "user": "u1"}
    assert cache_key(1, {**noisy, "metadata": {"trace": "x"}}, "chat") == key
    assert cache_key(2, BODY, "chat") != key  # projects never share answers
    assert cache_key(1, BODY, "completions") != key
    assert cache_key(1, {**BODY, "temperature": 0.5}, "chat") != key
    assert cache_key(1, {**BODY, "messages": [{"role": "user", "content": "hi!"}]}) != key
    assert len(key) == 64


async def test_memory_cache_hit_miss_ttl_and_lru_bound():
    clock = Clock()
    cache = MemoryCache(max_entries=2, clock=clock)
    assert await cache.get("a") is None
    await cache.set("a", RESPONSE, ttl=10)
    hit = await cache.get("a")
    assert hit == RESPONSE
    assert hit is not None
    hit["id"] = "changed"  # a caller's change does not reach the cache
    assert (await cache.get("a")) == RESPONSE
    clock.now += 10
    assert await cache.get("a") is None  # expired
    await cache.set("a", {"n": 1}, 60)
    await cache.set("b", {"n": 2}, 60)
    await cache.get("a")  # a is now the most recently used
    await cache.set("c", {"n": 3}, 60)
    assert len(cache) == 2
    assert await cache.get("b") is None
    assert await cache.get("a") == {"n": 1}
    assert await cache.get("c") == {"n": 3}


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate.upgrade(database)
    try:
        yield database
    finally:
        database.close()


async def test_database_cache_hit_miss_ttl_and_persistence(db: Database):
    clock = Clock()
    cache = DatabaseCache(db, clock=clock)
    key = cache_key(1, BODY, "chat")
    assert await cache.get(key) is None
    await cache.set(key, RESPONSE, ttl=30)
    assert await cache.get(key) == RESPONSE
    # A new process (new cache object) finds it.
    assert await DatabaseCache(db, clock=clock).get(key) == RESPONSE
    # Overwrite, then expire.
    await cache.set(key, {**RESPONSE, "id": "second"}, ttl=30)
    assert (await cache.get(key) or {})["id"] == "second"
    clock.now += 31
    assert await cache.get(key) is None
    assert cache.purge() == 1
    assert cache.purge() == 0


async def test_redis_cache_hit_miss_and_ttl(redis_url: str):
    prefix = f"test:{secrets.token_hex(6)}:"
    cache = RedisCache(redis_url, prefix)
    other_replica = RedisCache(redis_url, prefix)
    try:
        assert await cache.get("k") is None
        await cache.set("k", RESPONSE, ttl=60)
        assert await other_replica.get("k") == RESPONSE
        ttl_ms = await cache.client.pttl(prefix + "cache:k")
        assert 0 < ttl_ms <= 60_000
        await cache.set("short", RESPONSE, ttl=0.05)
        for _ in range(200):
            if await cache.get("short") is None:
                break
            await asyncio.sleep(0.01)
        assert await cache.get("short") is None
    finally:
        await cache.client.delete(prefix + "cache:k", prefix + "cache:short")
        await cache.aclose()
        await other_replica.aclose()


async def test_make_cache_follows_the_settings(tmp_path, redis_url: str):
    def settings(**values: Any) -> Any:
        return load_settings({"data_dir": tmp_path, **values}, environ={})

    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        assert isinstance(make_cache(settings(), db), MemoryCache)
        assert isinstance(make_cache(settings(gateway_cache_backend="database"), db), DatabaseCache)
        shared = make_cache(settings(gateway_cache_backend="redis", redis_url=redis_url), db)
        assert isinstance(shared, RedisCache)
        await shared.aclose()
    finally:
        db.close()


def test_replayed_chunks_are_valid_openai_chunks_and_assemble_back():
    chunks = replay_as_chunks(RESPONSE, include_usage=True)
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
    assert parsed[0].choices[0].delta.role == "assistant"
    assert "".join(p.choices[0].delta.content or "" for p in parsed if p.choices) == "Hello there"
    assert parsed[-1].choices == [] and parsed[-1].usage is not None
    assert parsed[-1].usage.total_tokens == 5
    assert [p.choices[0].finish_reason for p in parsed if p.choices][-1] == "stop"
    assert assemble_chunks(chunks) == RESPONSE
    # Without include_usage there is no usage chunk.
    assert all(c.get("usage") is None for c in replay_as_chunks(RESPONSE))


def test_tool_calls_and_several_choices_survive_the_round_trip():
    response: dict[str, Any] = {
        **RESPONSE,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "lookup", "arguments": '{"q": "x"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
                "logprobs": None,
            },
            {
                "index": 1,
                "message": {"role": "assistant", "content": "second"},
                "finish_reason": "stop",
                "logprobs": None,
            },
        ],
    }
    ChatCompletion.model_validate(response)
    chunks = replay_as_chunks(response)
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    assembled = assemble_chunks(chunks, usage=response["usage"])
    assert assembled == response


def test_legacy_completions_replay():
    response = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "text": "abc", "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    Completion.model_validate(response)
    chunks = replay_as_chunks(response, include_usage=True)
    for chunk in chunks:
        Completion.model_validate(chunk)
    assert assemble_chunks(chunks) == response
    assert assemble_chunks([]) is None
