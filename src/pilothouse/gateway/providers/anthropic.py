"""``anthropic``: chat completions translated to the Anthropic Messages API and back.

Covers system prompts, text and image parts, tools (definitions, ``tool_choice``, assistant
tool calls and tool results), ``stop``, ``max_tokens`` and usage, streaming included. Anthropic
parameters with no OpenAI equivalent (``top_k``, ``thinking``, ``service_tier``) pass through.

``response_format``: a ``json_schema`` becomes a tool whose ``input_schema`` is the schema, and
the model is made to call it; its input comes back as the message ``content`` (JSON text), as
OpenAI returns structured output. ``json_object`` adds an instruction to the system prompt
(the Messages API has no JSON mode). ``n > 1`` sends n requests at once and merges the answers
(streams too: their chunks interleave as choices 0 to n-1).
"""

from __future__ import annotations

import asyncio
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
#: Appended to the system prompt for ``response_format: {"type": "json_object"}``.
JSON_OBJECT_INSTRUCTION = (
    "Respond with a single valid JSON object only: no prose, no Markdown code fences."
)
#: Name of the answer tool when a ``json_schema`` response format does not name itself.
DEFAULT_SCHEMA_NAME = "response"
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
    _response_format(body, out)
    return out


def _bad_format(message: str, param: str = "response_format") -> AttemptFailed:
    return AttemptFailed(BadRequest(message, param=param, code="invalid_value"), FATAL)


def schema_tool(body: dict[str, Any]) -> str | None:
    """The name of the answer tool standing for a ``json_schema`` response format, if any."""
    spec = body.get("response_format")
    if not isinstance(spec, dict) or spec.get("type") != "json_schema":
        return None
    schema = spec.get("json_schema")
    name = schema.get("name") if isinstance(schema, dict) else None
    return name if isinstance(name, str) and name else DEFAULT_SCHEMA_NAME


def _response_format(body: dict[str, Any], out: dict[str, Any]) -> None:
    """Honour ``response_format`` with what the Messages API has: a forced tool, or words."""
    spec = body.get("response_format")
    if spec is None:
        return
    kind = spec.get("type")
    if kind == "text":
        return
    if kind == "json_object":
        out["system"] = "\n\n".join(s for s in (out.get("system"), JSON_OBJECT_INSTRUCTION) if s)
        return
    if kind != "json_schema":
        raise _bad_format(
            f"response_format.type {kind!r} is not one of text, json_object, json_schema",
            "response_format.type",
        )
    schema = spec.get("json_schema")
    if not isinstance(schema, dict) or not isinstance(schema.get("schema", {}), dict):
        raise _bad_format("expected an object with name and schema", "response_format.json_schema")
    name = schema_tool(body)
    tools: list[dict[str, Any]] = out.get("tools", [])
    if any(t.get("name") == name for t in tools):
        raise _bad_format(
            f"the schema name {name!r} is also the name of a tool",
            "response_format.json_schema.name",
        )
    tool = {
        "name": name,
        "description": schema.get("description") or "Give the answer in this exact shape.",
        "input_schema": schema.get("schema") or {"type": "object"},
    }
    choice = out.get("tool_choice") or {}
    if not tools or choice.get("type") == "none":
        # Only the answer tool, and it must be called.
        out["tools"] = [tool]
        out["tool_choice"] = {"type": "tool", "name": name}
        return
    out["tools"] = [*tools, tool]
    if choice.get("type") != "tool":
        # The model calls one of the client's tools or answers through the schema.
        out["tool_choice"] = {**choice, "type": "any"}


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


def to_completion(doc: dict[str, Any], schema: str | None = None) -> dict[str, Any]:
    """An Anthropic message as an OpenAI chat completion.

    A call of the ``schema`` tool (see :func:`schema_tool`) is the answer: its input becomes the
    message content, as JSON text.
    """
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    answer: str | None = None
    for block in doc.get("content") or []:
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "tool_use" and schema is not None and block.get("name") == schema:
            answer = orjson.dumps(block.get("input") or {}).decode()
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
    message: dict[str, Any] = {"role": "assistant", "content": answer or "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    finish = FINISH.get(doc.get("stop_reason") or "", "stop")
    if answer is not None and not calls:
        finish = "stop"
    return {
        "id": doc.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": doc.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
        "usage": to_usage(doc.get("usage") or {}),
    }


def merge_choices(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """One completion with the choices of several (renumbered) and their usage summed."""
    merged = {**answers[0], "choices": []}
    usage = dict.fromkeys(("prompt_tokens", "completion_tokens", "total_tokens"), 0)
    for answer in answers:
        for choice in answer["choices"]:
            merged["choices"].append({**choice, "index": len(merged["choices"])})
        for name in usage:
            usage[name] += answer["usage"][name]
    merged["usage"] = usage
    return merged


async def merge_streams(
    streams: list[AsyncIterator[dict[str, Any]]],
) -> AsyncIterator[dict[str, Any]]:
    """The chunks of n streams as one stream of n choices: stream i is choice i, chunks in the
    order they arrive, one usage chunk (summed) at the end. The first failure ends it all."""
    queue: asyncio.Queue[tuple[int, dict[str, Any] | Exception | None]] = asyncio.Queue(
        maxsize=4 * len(streams)
    )

    async def pump(index: int, stream: AsyncIterator[dict[str, Any]]) -> None:
        try:
            async for chunk in stream:
                await queue.put((index, chunk))
            await queue.put((index, None))
        except Exception as exc:  # noqa: BLE001 - raised again by the consumer
            await queue.put((index, exc))
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()

    tasks = [asyncio.ensure_future(pump(i, stream)) for i, stream in enumerate(streams)]
    usage = dict.fromkeys(("prompt_tokens", "completion_tokens", "total_tokens"), 0)
    last: dict[str, Any] = {}
    running = len(tasks)
    try:
        while running:
            index, item = await queue.get()
            if item is None:
                running -= 1
                continue
            if isinstance(item, Exception):
                raise item
            if not item.get("choices"):
                for name in usage:
                    usage[name] += (item.get("usage") or {}).get(name, 0)
                continue
            last = last or item  # one id and model for the whole answer
            choices = [{**c, "index": index} for c in item["choices"]]
            yield {**item, "id": last["id"], "model": last["model"], "choices": choices}
        yield {**last, "choices": [], "usage": usage}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


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
        n = body.get("n") or 1
        if n == 1:
            return await self._message(deployment, body)
        # The Messages API answers once per request: ask n times at once and merge.
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._message(deployment, body)) for _ in range(n)]
        except BaseExceptionGroup as failed:
            # The first failure decides (the others were cancelled): retry or fall back as one.
            raise failed.exceptions[0] from None
        return merge_choices([t.result() for t in tasks])

    async def _message(self, deployment: Deployment, body: dict[str, Any]) -> dict[str, Any]:
        url, content, headers = self._request(deployment, body, False)
        reply = await self.upstream.post(url, content, headers, deployment.timeouts)
        if reply.status >= 400:
            raise AttemptFailed.from_status(reply.status, *error_message(reply.content))
        try:
            doc = orjson.loads(reply.content)
        except orjson.JSONDecodeError:
            raise AttemptFailed(UpstreamError("anthropic answered with invalid JSON")) from None
        return to_completion(doc, schema_tool(body))

    def chat_stream(
        self, deployment: Deployment, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        n = body.get("n") or 1
        if n == 1:
            return self._stream(deployment, body)
        return merge_streams([self._stream(deployment, body) for _ in range(n)])

    async def _stream(
        self, deployment: Deployment, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        url, content, headers = self._request(deployment, body, True)
        timeouts = deployment.timeouts
        schema = schema_tool(body)
        answer_block: int | None = None  # the block of the schema tool, streamed as content
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
                    if block.get("type") == "tool_use" and schema and block.get("name") == schema:
                        answer_block = event.get("index", 0)
                    elif block.get("type") == "tool_use":
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
                        if event.get("index", 0) == answer_block:
                            yield chunk({"content": delta.get("partial_json", "")})
                            continue
                        index = tools.get(event.get("index", 0), 0)
                        part = {
                            "index": index,
                            "function": {"arguments": delta.get("partial_json", "")},
                        }
                        yield chunk({"tool_calls": [part]})
                elif kind == "message_delta":
                    usage.update(event.get("usage") or {})
                    reason = (event.get("delta") or {}).get("stop_reason")
                    finish = FINISH.get(reason or "", "stop")
                    if answer_block is not None and not tools:
                        finish = "stop"
                    yield chunk({}, finish)
                elif kind == "message_stop":
                    yield {**base, "choices": [], "usage": to_usage(usage)}
                    return
                elif kind == "error":
                    message, code = error_message(data)
                    overloaded = "overloaded" in (code or "")
                    raise AttemptFailed.from_status(529 if overloaded else 500, message, code)
