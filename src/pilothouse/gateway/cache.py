"""Exact-match response cache: the same request to the same project gets the same answer.

The key is a SHA-256 of the normalized request (sorted keys, without fields that do not change
the answer such as ``stream``, ``user`` or ``metadata``), so a streaming request can be answered
from a non-streaming one and the other way round. The value is always the complete
(non-stream) response; :func:`replay_as_chunks` turns it into ``chat.completion.chunk`` events
and :func:`assemble_chunks` turns a relayed stream back into a response to store.

Backends: :class:`MemoryCache` (LRU with TTL, bounded), :class:`DatabaseCache` (the
``gateway_cache`` table; survives restarts in embedded mode) and :class:`RedisCache` (shared by
replicas).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from pilothouse.errors import ConfigError
from pilothouse.store import gateway as store

if TYPE_CHECKING:
    from pilothouse.gateway.limits import Clock
    from pilothouse.settings import Settings
    from pilothouse.store import Database

#: Request fields that do not change the answer.
IGNORED_FIELDS = frozenset(
    {"stream", "stream_options", "user", "metadata", "store", "safety_identifier"}
)


def cache_key(project_id: int, body: Mapping[str, Any], operation: str = "") -> str:
    """A stable hash of the request's answer-relevant fields, per project and operation."""
    normalized = {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
    doc = orjson.dumps(
        [project_id, operation, normalized], option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
    )
    return hashlib.sha256(doc).hexdigest()


class ResponseCache(Protocol):
    """Where cached responses live."""

    async def get(self, key: str) -> dict[str, Any] | None:
        """The response stored under ``key``, or None when missing or expired."""
        ...

    async def set(self, key: str, value: dict[str, Any], ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class MemoryCache:
    """Least-recently-used entries with a TTL, at most ``max_entries`` of them."""

    def __init__(self, max_entries: int = 10_000, clock: Clock = time.monotonic) -> None:
        self.max_entries = max_entries
        self.clock = clock
        # Values are kept serialized so a caller mutating an answer cannot change the cache.
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> dict[str, Any] | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, value = found
        if expires <= self.clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        loaded: dict[str, Any] = orjson.loads(value)
        return loaded

    async def set(self, key: str, value: dict[str, Any], ttl: float) -> None:
        if self.max_entries <= 0 or ttl <= 0:
            return
        self._entries[key] = (self.clock() + ttl, orjson.dumps(value))
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def aclose(self) -> None:
        self._entries.clear()


class DatabaseCache:
    """Entries in the ``gateway_cache`` table (queries run off the event loop)."""

    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self.db = db
        self.clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _get(self, key: str) -> bytes | None:
        with self.db.read() as conn:
            return store.cache_get(conn, key, self._now())

    def _set(self, key: str, value: bytes, ttl: float) -> None:
        with self.db.write() as conn:
            store.cache_set(conn, key, value, self._now() + timedelta(seconds=ttl))

    async def get(self, key: str) -> dict[str, Any] | None:
        raw = await asyncio.to_thread(self._get, key)
        if raw is None:
            return None
        loaded: dict[str, Any] = orjson.loads(raw)
        return loaded

    async def set(self, key: str, value: dict[str, Any], ttl: float) -> None:
        if ttl > 0:
            await asyncio.to_thread(self._set, key, orjson.dumps(value), ttl)

    def purge(self) -> int:
        """Delete expired entries; returns how many."""
        with self.db.write() as conn:
            return store.cache_purge(conn, self._now())

    async def aclose(self) -> None:
        return None


class RedisCache:
    """Entries in Redis under ``<prefix>cache:<key>``, expired by Redis itself."""

    def __init__(self, redis_url: str, prefix: str = "ph:gw:") -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError:
            raise ConfigError(
                "the Redis response cache needs the redis package: pip install 'pilothouse[redis]'"
            ) from None
        self.client: Any = aioredis.Redis.from_url(redis_url)
        self.prefix = prefix + "cache:"

    async def get(self, key: str) -> dict[str, Any] | None:
        raw = await self.client.get(self.prefix + key)
        if raw is None:
            return None
        loaded: dict[str, Any] = orjson.loads(raw)
        return loaded

    async def set(self, key: str, value: dict[str, Any], ttl: float) -> None:
        if ttl > 0:
            await self.client.set(
                self.prefix + key, orjson.dumps(value), px=max(1, int(ttl * 1000))
            )

    async def aclose(self) -> None:
        await self.client.aclose()


def make_cache(settings: Settings, db: Database) -> ResponseCache:
    """The cache backend the settings ask for."""
    backend = settings.gateway_cache_backend
    if backend == "database":
        return DatabaseCache(db)
    if backend == "redis":
        if not settings.redis_url:
            raise ConfigError("PILOTHOUSE_GATEWAY_CACHE_BACKEND=redis needs PILOTHOUSE_REDIS_URL")
        return RedisCache(settings.redis_url, settings.gateway_redis_prefix)
    return MemoryCache(settings.gateway_cache_max_entries)


# --- streams ------------------------------------------------------------------------------


def replay_as_chunks(
    response: Mapping[str, Any], include_usage: bool = False
) -> list[dict[str, Any]]:
    """The chunks a stream of ``response`` (a chat or legacy completion) would have sent."""
    legacy = response.get("object") == "text_completion"
    base = {
        "id": response.get("id", ""),
        "object": "text_completion" if legacy else "chat.completion.chunk",
        "created": response.get("created", int(time.time())),
        "model": response.get("model", ""),
    }
    if response.get("system_fingerprint") is not None:
        base["system_fingerprint"] = response["system_fingerprint"]
    chunks: list[dict[str, Any]] = []
    for choice in response.get("choices") or []:
        index = choice.get("index", 0)
        if legacy:
            chunks.append({**base, "choices": [_legacy_choice(choice, index)]})
            continue
        message = choice.get("message") or {}
        delta: dict[str, Any] = {"role": message.get("role", "assistant"), "content": ""}
        if message.get("refusal") is not None:
            delta["refusal"] = message["refusal"]
        chunks.append({**base, "choices": [_choice(index, delta, None, choice)]})
        if message.get("content"):
            chunks.append({**base, "choices": [_choice(index, {"content": message["content"]})]})
        for position, tool_call in enumerate(message.get("tool_calls") or []):
            chunks.append(
                {
                    **base,
                    "choices": [_choice(index, {"tool_calls": [_tool_delta(position, tool_call)]})],
                }
            )
        chunks.append({**base, "choices": [_choice(index, {}, choice.get("finish_reason"))]})
    if include_usage and response.get("usage") is not None:
        chunks.append({**base, "choices": [], "usage": response["usage"]})
    return chunks


def _choice(
    index: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"index": index, "delta": delta, "finish_reason": finish_reason}
    if source is not None and "logprobs" in source:
        out["logprobs"] = source["logprobs"]
    return out


def _legacy_choice(choice: Mapping[str, Any], index: int) -> dict[str, Any]:
    return {
        "index": index,
        "text": choice.get("text", ""),
        "logprobs": choice.get("logprobs"),
        "finish_reason": choice.get("finish_reason"),
    }


def _tool_delta(position: int, tool_call: Mapping[str, Any]) -> dict[str, Any]:
    function = tool_call.get("function") or {}
    return {
        "index": position,
        "id": tool_call.get("id"),
        "type": tool_call.get("type", "function"),
        "function": {"name": function.get("name", ""), "arguments": function.get("arguments", "")},
    }


def merge_tool_call(slots: dict[int, dict[str, Any]], delta: dict[str, Any]) -> None:
    """Fold one streamed ``tool_calls`` delta into the calls assembled so far (by index)."""
    slot = slots.setdefault(
        delta.get("index", 0),
        {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
    )
    if delta.get("id"):
        slot["id"] = delta["id"]
    function = delta.get("function") or {}
    slot["function"]["name"] += function.get("name") or ""
    slot["function"]["arguments"] += function.get("arguments") or ""


def assemble_chunks(
    chunks: Sequence[Mapping[str, Any]], usage: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """The complete response a stream of chunks amounts to (None when there is nothing)."""
    if not chunks:
        return None
    first = chunks[0]
    legacy = first.get("object") == "text_completion"
    texts: dict[int, list[str]] = {}
    roles: dict[int, str] = {}
    finish: dict[int, Any] = {}
    tools: dict[int, dict[int, dict[str, Any]]] = {}
    for chunk in chunks:
        if chunk.get("usage") is not None:
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            index = choice.get("index", 0)
            texts.setdefault(index, [])
            if choice.get("finish_reason") is not None:
                finish[index] = choice["finish_reason"]
            if legacy:
                texts[index].append(choice.get("text") or "")
                continue
            delta = choice.get("delta") or {}
            if delta.get("role"):
                roles[index] = delta["role"]
            if delta.get("content"):
                texts[index].append(delta["content"])
            for tc in delta.get("tool_calls") or []:
                merge_tool_call(tools.setdefault(index, {}), tc)
    choices: list[dict[str, Any]] = []
    for index in sorted(texts):
        text = "".join(texts[index])
        if legacy:
            choices.append(
                {"index": index, "text": text, "logprobs": None, "finish_reason": finish.get(index)}
            )
            continue
        message: dict[str, Any] = {
            "role": roles.get(index, "assistant"),
            "content": text if text or index not in tools else None,
        }
        if index in tools:
            message["tool_calls"] = [tools[index][k] for k in sorted(tools[index])]
        choices.append(
            {
                "index": index,
                "message": message,
                "finish_reason": finish.get(index),
                "logprobs": None,
            }
        )
    response: dict[str, Any] = {
        "id": first.get("id", ""),
        "object": "text_completion" if legacy else "chat.completion",
        "created": first.get("created", int(time.time())),
        "model": first.get("model", ""),
        "choices": choices,
    }
    if first.get("system_fingerprint") is not None:
        response["system_fingerprint"] = first["system_fingerprint"]
    if usage is not None:
        response["usage"] = dict(usage)
    return response


__all__ = [
    "IGNORED_FIELDS",
    "DatabaseCache",
    "MemoryCache",
    "RedisCache",
    "ResponseCache",
    "assemble_chunks",
    "cache_key",
    "make_cache",
    "merge_tool_call",
    "replay_as_chunks",
]
