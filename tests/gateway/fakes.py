# ruff: noqa: E501
# mypy: disable-error-code="arg-type, call-overload, union-attr, dict-item, index, attr-defined, unused-ignore, assignment"
"""A scriptable fake of OpenAI-compatible and Anthropic Messages upstreams, on a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeUpstream:
    """ASGI app. ``failures`` are popped one per request: (status, message) answers an error,
    ("hang", seconds) waits before answering."""

    chunks: int = 5
    chunk_delay: float = 0.0
    delay: float = 0.0
    failures: list[tuple[Any, Any]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    disconnects: int = 0
    name: str = "fake"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        raw = await read_body(receive)
        body = json.loads(raw or b"{}")
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.seen.append(Seen(scope["path"], headers, body))
        if self.failures:
            status, detail = self.failures.pop(0)
            if status == "hang":
                await asyncio.sleep(detail)
            else:
                await self.json(send, {"error": {"message": detail, "type": "x"}}, status)
                return
        if self.delay:
            await asyncio.sleep(self.delay)
        path = scope["path"]
        if path.endswith("/v1/messages"):
            if body.get("stream"):
                await self.anthropic_stream(body, send, receive)
            else:
                await self.json(send, anthropic_message(body))
        elif path.endswith("/chat/completions"):
            if body.get("stream"):
                await self.openai_stream(body, send, receive)
            else:
                await self.json(send, completion(body, self.name))
        elif path.endswith("/embeddings"):
            items = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [
                {"object": "embedding", "index": i, "embedding": [0.5] * 4}
                for i in range(len(items))
            ]
            usage = {"prompt_tokens": 3 * len(items), "total_tokens": 3 * len(items)}
            await self.json(
                send, {"object": "list", "model": body["model"], "data": data, "usage": usage}
            )
        elif path.endswith("/completions"):
            await self.json(
                send,
                {
                    "id": "cmpl-1",
                    "object": "text_completion",
                    "created": 1,
                    "model": body["model"],
                    "choices": [
                        {"index": 0, "text": "done", "finish_reason": "stop", "logprobs": None}
                    ],
                    "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
                },
            )
        else:
            await self.json(send, {"error": {"message": "no such route"}}, 404)

    async def json(self, send: Any, doc: Any, status: int = 200) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(doc).encode()})

    async def events(self, send: Any, receive: Any, events: list[bytes]) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.ensure_future(watch())
        try:
            for i, event in enumerate(events):
                if i and self.chunk_delay:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(gone.wait(), self.chunk_delay)
                if gone.is_set():
                    self.disconnects += 1
                    return
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            watcher.cancel()

    async def openai_stream(self, body: dict[str, Any], send: Any, receive: Any) -> None:
        base = {
            "id": "chatcmpl-s",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": body["model"],
        }

        def event(doc: Any) -> bytes:
            return b"data: " + json.dumps(doc).encode() + b"\n\n"

        out = [
            event(
                {
                    **base,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": ""},
                            "finish_reason": None,
                        }
                    ],
                }
            )
        ]
        for i in range(self.chunks):
            out.append(
                event(
                    {
                        **base,
                        "choices": [
                            {"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}
                        ],
                    }
                )
            )
        out.append(event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {
                "prompt_tokens": 7,
                "completion_tokens": self.chunks,
                "total_tokens": 7 + self.chunks,
            }
            out.append(event({**base, "choices": [], "usage": usage}))
        out.append(b"data: [DONE]\n\n")
        await self.events(send, receive, out)

    async def anthropic_stream(self, body: dict[str, Any], send: Any, receive: Any) -> None:
        def event(kind: str, doc: dict[str, Any]) -> bytes:
            return (
                f"event: {kind}\ndata: ".encode()
                + json.dumps({"type": kind, **doc}).encode()
                + b"\n\n"
            )

        out = [
            event(
                "message_start",
                {
                    "message": {
                        "id": "msg_1",
                        "type": "message",
                        "role": "assistant",
                        "model": body["model"],
                        "content": [],
                        "usage": {"input_tokens": 11, "output_tokens": 1},
                    }
                },
            ),
            event("ping", {}),
        ]
        # A forced tool call comes without text, as from Claude.
        forced = (body.get("tool_choice") or {}).get("type") in ("tool", "any")
        if not forced:
            out.append(
                event(
                    "content_block_start",
                    {"index": 0, "content_block": {"type": "text", "text": ""}},
                )
            )
            for i in range(self.chunks):
                out.append(
                    event(
                        "content_block_delta",
                        {"index": 0, "delta": {"type": "text_delta", "text": f"tok{i} "}},
                    )
                )
            out.append(event("content_block_stop", {"index": 0}))
        stop = "end_turn"
        if body.get("tools"):
            stop = "tool_use"
            out += [
                event(
                    "content_block_start",
                    {
                        "index": 1,
                        "content_block": {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": anthropic_tool(body),
                            "input": {},
                        },
                    },
                ),
                event(
                    "content_block_delta",
                    {
                        "index": 1,
                        "delta": {"type": "input_json_delta", "partial_json": '{"city": '},
                    },
                ),
                event(
                    "content_block_delta",
                    {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'}},
                ),
                event("content_block_stop", {"index": 1}),
            ]
        out += [
            event(
                "message_delta",
                {
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": self.chunks},
                },
            ),
            event("message_stop", {}),
        ]
        await self.events(send, receive, out)


async def serve_lifespan(receive: Any, send: Any) -> None:
    """Answer an ASGI lifespan conversation (fakes have nothing to start or stop)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive: Any) -> bytes:
    """The whole ASGI request body."""
    raw = b""
    while True:
        message = await receive()
        raw += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return raw


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            content = message["content"]
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
            return str(content)
    return ""


def completion(body: dict[str, Any], name: str = "fake") -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": f"{name}: {last_user_text(body)}"}
    finish = "stop"
    if body.get("tools") and body.get("tool_choice") != "none":
        function = body["tools"][0]["function"]["name"]
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": function, "arguments": '{"city": "Paris"}'},
                }
            ],
        }
        finish = "tool_calls"
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": body["model"],
        "choices": [
            {"index": i, "message": message, "finish_reason": finish, "logprobs": None}
            for i in range(body.get("n") or 1)
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


def anthropic_tool(body: dict[str, Any]) -> str:
    """The tool the fake Claude calls: the forced one, else the first."""
    choice = body.get("tool_choice") or {}
    return str(choice.get("name") or body["tools"][0]["name"])


def anthropic_message(body: dict[str, Any]) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": f"claude: {last_user_text(body)}"}]
    stop = "end_turn"
    if body.get("tools"):
        if (body.get("tool_choice") or {}).get("type") in ("tool", "any"):
            content = []  # a forced tool call comes without text, as from Claude
        content.append(
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": anthropic_tool(body),
                "input": {"city": "Paris"},
            }
        )
        stop = "tool_use"
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop,
        "usage": {"input_tokens": 11, "output_tokens": 4},
    }
