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


def leaky(body: dict[str, Any]) -> str:
    """A model that repeats its system prompt."""
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    return f"My instructions: {system}"
