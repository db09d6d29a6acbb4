"""An OpenAI-compatible upstream whose answers a test scripts: ``reply(body) -> content``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from tests.gateway.fakes import read_body, serve_lifespan


class ScriptedUpstream:
    """ASGI app answering each chat completion with ``reply(body)``; keeps the bodies seen."""

    def __init__(self, reply: Callable[[dict[str, Any]], str]) -> None:
        self.reply = reply
        self.bodies: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        body = orjson.loads(await read_body(receive))
        self.bodies.append(body)
        if body.get("stream"):
            await self.stream(body, send)
            return
        doc = {
            "id": f"chatcmpl-{len(self.bodies)}",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.reply(body)},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": orjson.dumps(doc)})

    async def stream(self, body: dict[str, Any], send: Any) -> None:
        """The answer as server-sent events, a word per chunk, then a finish chunk."""
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        words = self.reply(body).split(" ")
        deltas = [{"content": w if i == 0 else " " + w} for i, w in enumerate(words)]
        for i, delta in enumerate([*deltas, {}]):
            chunk = {
                "id": "chatcmpl-s",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "delta": delta,
                        "finish_reason": None if i < len(deltas) else "stop",
                    }
                ],
            }
            event = b"data: " + orjson.dumps(chunk) + b"\n\n"
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


def leaky(body: dict[str, Any]) -> str:
    """A model that repeats its system prompt."""
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    return f"My instructions: {system}"
