"""``anthropic``: chat completions translated to the Anthropic Messages API and back.

Covers system prompts, text and image parts, tools (definitions, ``tool_choice``, assistant
tool calls and tool results), ``stop``, ``max_tokens`` and usage, streaming included. Anthropic
parameters with no OpenAI equivalent (``top_k``, ``thinking``, ``service_tier``) pass through.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from pilothouse.errors import BadRequest, UpstreamError
from pilothouse.gateway.config import Deployment
from pilothouse.gateway.http import sse_events
from pilothouse.gateway.providers.base import FATAL, AttemptFailed, Provider, error_message

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
PASSTHROUGH = ("top_k", "thinking", "service_tier")
FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _blocks(content: Any) -> list[dict[str, Any]]:
    """OpenAI content (string or parts) as Anthropic content blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            out.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            if url.startswith("data:") and ";base64," in url:
                media, data = url[5:].split(";base64,", 1)
                source = {"type": "base64", "media_type": media, "data": data}
            else:
                source = {"type": "url", "url": url}
            out.append({"type": "image", "source": source})
    return out


def _arguments(raw: Any) -> Any:
    if isinstance(raw, dict):
        return raw
    try:
        value = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"value": value}


def to_messages(body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat completion request as an Anthropic Messages request."""
    if (body.get("n") or 1) > 1:
        raise AttemptFailed(BadRequest("n > 1 is not supported by anthropic", param="n"), FATAL)
    system: list[str] = []
    messages: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})

    for message in body.get("messages") or []:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.append(_text_of(content))
        elif role == "user":
            add("user", _blocks(content))
        elif role == "assistant":
            blocks = _blocks(content)
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "input": _arguments(function.get("arguments")),
                    }
                )
            add("assistant", blocks)
        elif role in ("tool", "function"):
            add(
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": message.get("tool_call_id") or message.get("name"),
                        "content": _text_of(content),
                    }
                ],
            )
    out: dict[str, Any] = {
        "messages": messages,
        "max_tokens": body.get("max_completion_tokens")
        or body.get("max_tokens")
        or DEFAULT_MAX_TOKENS,
    }
    if system:
        out["system"] = "\n\n".join(s for s in system if s)
    for name in ("temperature", "top_p", *PASSTHROUGH):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("tools"):
        out["tools"] = [
            {
                "name": t["function"].get("name"),
                "description": t["function"].get("description", ""),
                "input_schema": t["function"].get("parameters") or {"type": "object"},
            }
            for t in body["tools"]
            if isinstance(t, dict) and isinstance(t.get("function"), dict)
        ]
        choice = body.get("tool_choice")
        mapped: dict[str, Any] | None = None
        if choice == "auto":
            mapped = {"type": "auto"}
        elif choice == "required":
            mapped = {"type": "any"}
        elif choice == "none":
            mapped = {"type": "none"}
        elif isinstance(choice, dict):
            mapped = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
        if body.get("parallel_tool_calls") is False:
            mapped = {**(mapped or {"type": "auto"}), "disable_parallel_tool_use": True}
        if mapped is not None:
            out["tool_choice"] = mapped
    user = body.get("user")
    if isinstance(user, str):
        out["metadata"] = {"user_id": user}
    return out


def to_usage(usage: dict[str, Any]) -> dict[str, int]:
    prompt = int(usage.get("input_tokens") or 0)
    prompt += int(usage.get("cache_read_input_tokens") or 0)
    prompt += int(usage.get("cache_creation_input_tokens") or 0)
    completion = int(usage.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def to_completion(doc: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic message as an OpenAI chat completion."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in doc.get("content") or []:
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": doc.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": doc.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": FINISH.get(doc.get("stop_reason") or "", "stop"),
                "logprobs": None,
            }
        ],
        "usage": to_usage(doc.get("usage") or {}),
    }


class AnthropicProvider(Provider):
    name = "anthropic"

    def _request(
        self, deployment: Deployment, body: dict[str, Any], stream: bool
    ) -> tuple[str, bytes, dict[str, str]]:
        payload = {**deployment.params, **to_messages(body), "model": deployment.model}
        if stream:
            payload["stream"] = True
        headers = {
            "content-type": "application/json",
            "anthropic-version": API_VERSION,
            **deployment.headers,
        }
        if deployment.api_key:
            headers["x-api-key"] = deployment.api_key
        url = (deployment.base_url or DEFAULT_BASE_URL) + "/v1/messages"
        return url, orjson.dumps(payload), headers

    async def chat(self, deployment: Deployment, body: dict[str, Any]) -> dict[str, Any]:
        url, content, headers = self._request(deployment, body, False)
        reply = await self.upstream.post(url, content, headers, deployment.timeouts)
        if reply.status >= 400:
            raise AttemptFailed.from_status(reply.status, *error_message(reply.content))
        try:
            doc = orjson.loads(reply.content)
        except orjson.JSONDecodeError:
            raise AttemptFailed(UpstreamError("anthropic answered with invalid JSON")) from None
        return to_completion(doc)

    async def chat_stream(
        self, deployment: Deployment, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        url, content, headers = self._request(deployment, body, True)
        timeouts = deployment.timeouts
        base: dict[str, Any] = {
            "id": "",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": deployment.model,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        usage: dict[str, Any] = {}
        tools: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index
        async with self.upstream.stream(url, content, headers, timeouts) as response:
            if response.status >= 400:
                raw = await response.read()
                raise AttemptFailed.from_status(response.status, *error_message(raw))
            async for data in sse_events(response, timeouts):
                try:
                    event = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise AttemptFailed(UpstreamError("anthropic sent an invalid event")) from None
                kind = event.get("type")
                if kind == "message_start":
                    message = event.get("message") or {}
                    base["id"] = message.get("id", "")
                    base["model"] = message.get("model", deployment.model)
                    usage.update(message.get("usage") or {})
                    yield chunk({"role": "assistant", "content": ""})
                elif kind == "content_block_start":
                    block = event.get("content_block") or {}
                    if block.get("type") == "tool_use":
                        index = tools[event.get("index", 0)] = len(tools)
                        call = {
                            "index": index,
                            "id": block.get("id"),
                            "type": "function",
                            "function": {"name": block.get("name"), "arguments": ""},
                        }
                        yield chunk({"tool_calls": [call]})
                    elif block.get("type") == "text" and block.get("text"):
                        yield chunk({"content": block["text"]})
                elif kind == "content_block_delta":
                    delta = event.get("delta") or {}
                    if delta.get("type") == "text_delta":
                        yield chunk({"content": delta.get("text", "")})
                    elif delta.get("type") == "input_json_delta":
                        index = tools.get(event.get("index", 0), 0)
                        part = {
                            "index": index,
                            "function": {"arguments": delta.get("partial_json", "")},
                        }
                        yield chunk({"tool_calls": [part]})
                elif kind == "message_delta":
                    usage.update(event.get("usage") or {})
                    reason = (event.get("delta") or {}).get("stop_reason")
                    yield chunk({}, FINISH.get(reason or "", "stop"))
                elif kind == "message_stop":
                    yield {**base, "choices": [], "usage": to_usage(usage)}
                    return
                elif kind == "error":
                    message, code = error_message(data)
                    overloaded = "overloaded" in (code or "")
                    raise AttemptFailed.from_status(529 if overloaded else 500, message, code)
