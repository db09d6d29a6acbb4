"""``mock``: local models with realistic answer shapes, so the gateway works with no API key.

- ``echo`` repeats the last user message (or calls the first tool when ``tool_choice`` asks).
- ``lorem`` writes lorem ipsum, ``max_tokens`` words long (default 40).
- ``embed`` returns deterministic unit vectors (``dimensions``, default 16).
- ``error`` always fails like an overloaded upstream (503), to try retries and fallbacks.

Tokens are counted as words, which is close enough for demos and tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from pilothouse.errors import UpstreamError
from pilothouse.gateway.config import Deployment
from pilothouse.gateway.providers.base import AttemptFailed, Provider

LOREM = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "ut",
    "enim",
    "ad",
    "minim",
    "veniam",
    "quis",
    "nostrud",
    "exercitation",
    "ullamco",
    "laboris",
    "nisi",
    "ut",
    "aliquip",
    "ex",
    "ea",
    "commodo",
    "consequat",
]


def count_tokens(value: Any) -> int:
    """Words in a string, a message list or content parts."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(count_tokens(v) for v in value)
    if isinstance(value, dict):
        return count_tokens(value.get("content")) + count_tokens(value.get("text"))
    return 0


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class MockProvider(Provider):
    name = "mock"

    def _answer(self, deployment: Deployment, body: dict[str, Any]) -> tuple[str, list[Any]]:
        """The text and tool calls the model answers with."""
        if deployment.model == "error":
            raise AttemptFailed(UpstreamError("upstream answered 503: mock/error always fails"))
        messages = body.get("messages") or []
        tools = body.get("tools") or []
        choice = body.get("tool_choice")
        if tools and choice not in (None, "none", "auto"):
            wanted = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
            tool = next((t for t in tools if t.get("function", {}).get("name") == wanted), tools[0])
            function = tool.get("function", {})
            props = function.get("parameters", {}).get("properties", {})
            args = {k: "echo" if v.get("type") == "string" else None for k, v in props.items()}
            call = {
                "id": "call_" + secrets.token_hex(8),
                "type": "function",
                "function": {
                    "name": function.get("name", ""),
                    "arguments": orjson.dumps(args).decode(),
                },
            }
            return "", [call]
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if deployment.model == "lorem":
            n = int(limit or 40)
            return " ".join(LOREM[i % len(LOREM)] for i in range(n)), []
        last = next(
            (m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), {}
        )
        text = _text(last.get("content")) or _text(body.get("prompt"))
        if limit:
            text = " ".join(text.split()[: int(limit)])
        if body.get("response_format", {}).get("type") in ("json_object", "json_schema"):
            text = orjson.dumps({"echo": text}).decode()
        return text, []

    def _usage(self, body: dict[str, Any], text: str, calls: list[Any]) -> dict[str, int]:
        prompt = count_tokens(body.get("messages") or body.get("prompt") or "")
        completion = count_tokens(text) + sum(
            count_tokens(c["function"]["arguments"]) for c in calls
        )
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    async def chat(self, deployment: Deployment, body: dict[str, Any]) -> dict[str, Any]:
        text, calls = self._answer(deployment, body)
        n = int(body.get("n") or 1)
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        finish = "tool_calls" if calls else "stop"
        usage = self._usage(body, text, calls)
        usage["completion_tokens"] *= n
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return {
            "id": "chatcmpl-" + secrets.token_hex(12),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": deployment.model,
            "system_fingerprint": "mock",
            "choices": [
                {"index": i, "message": message, "finish_reason": finish, "logprobs": None}
                for i in range(n)
            ],
            "usage": usage,
        }

    async def chat_stream(
        self, deployment: Deployment, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        text, calls = self._answer(deployment, body)
        # Read now: the gateway puts back the client's stream_options once the stream opened.
        usage = self._usage(body, text, calls)
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": "chatcmpl-" + secrets.token_hex(12),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": deployment.model,
            "system_fingerprint": "mock",
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        yield chunk({"role": "assistant", "content": ""})
        if calls:
            call = calls[0]
            yield chunk({"tool_calls": [{"index": 0, **call}]})
        words = text.split(" ") if text else []
        for i, word in enumerate(words):
            await asyncio.sleep(0)  # a real stream yields to the loop between chunks
            yield chunk({"content": word if i == 0 else " " + word})
        yield chunk({}, "tool_calls" if calls else "stop")
        if wants_usage:
            yield {**base, "choices": [], "usage": usage}

    async def embeddings(self, deployment: Deployment, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        dims = int(body.get("dimensions") or 16)
        data = []
        for i, item in enumerate(items):
            seed = hashlib.sha256(orjson.dumps(item)).digest()
            raw = [(seed[j % 32] + j * 7) % 256 - 127.5 for j in range(dims)]
            norm = math.sqrt(sum(x * x for x in raw)) or 1.0
            data.append({"object": "embedding", "index": i, "embedding": [x / norm for x in raw]})
        tokens = count_tokens([str(x) for x in items])
        return {
            "object": "list",
            "model": deployment.model,
            "data": data,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    async def completions(self, deployment: Deployment, body: dict[str, Any]) -> dict[str, Any]:
        text, _ = self._answer(deployment, body)
        usage = self._usage(body, text, [])
        return {
            "id": "cmpl-" + secrets.token_hex(12),
            "object": "text_completion",
            "created": int(time.time()),
            "model": deployment.model,
            "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
            "usage": usage,
        }
