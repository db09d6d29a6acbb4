"""A local fake of an OpenAI-compatible chat model with deterministic answers, on a real socket.

The answer depends on the system prompt and the question, so two prompt versions give
different, reproducible answers:

- "city name only" in the system prompt: the capital, e.g. ``Paris``;
- "full sentence": ``The capital of France is Paris.``;
- "judge": the next scripted judge answer from ``FakeModel.judge_answers`` (cycled);
- otherwise: ``I don't know``.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from tests.gateway.fakes import read_body, serve_lifespan

CAPITALS = {
    "France": "Paris",
    "Japan": "Tokyo",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Germany": "Berlin",
    "Kenya": "Nairobi",
    "Peru": "Lima",
    "Egypt": "Cairo",
    "Canada": "Ottawa",
    "Norway": "Oslo",
}


@dataclass
class FakeModel:
    judge_answers: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    delay: float = 0.0
    in_flight: int = 0
    most_in_flight: int = 0

    def answer(self, body: dict[str, Any]) -> str:
        messages = body.get("messages") or []
        system = " ".join(m["content"] for m in messages if m.get("role") == "system")
        user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        if "evaluator" in system:
            return self.judge_answers.pop(0) if self.judge_answers else "no"
        country = next((c for c in CAPITALS if c in user), None)
        if country is None:
            return "I don't know"
        if "city name only" in system:
            return CAPITALS[country]
        if "full sentence" in system:
            return f"The capital of {country} is {CAPITALS[country]}."
        return "I don't know"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        raw = await read_body(receive)
        body = json.loads(raw or b"{}")
        self.requests.append(body)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        text = self.answer(body)
        doc = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": len(text.split()),
                "total_tokens": 10 + len(text.split()),
            },
        }
        payload = json.dumps(doc).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def gateway_config(url: str) -> str:
    """A gateway config serving the fake as ``fake`` (priced, so cost is recorded) and
    ``judge``."""
    return f"""
models:
  fake:
    deployments:
      - provider: openai
        model: fake-model
        base_url: {url}/v1
        api_key: sk-fake
        price: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}
  judge:
    deployments:
      - provider: openai
        model: fake-judge
        base_url: {url}/v1
        api_key: sk-fake
        price: {{input_per_mtok: 3.0, output_per_mtok: 15.0}}
  mock/echo:
    deployments:
      - provider: mock
        model: echo
  mock/embed:
    operation: embeddings
    deployments:
      - provider: mock
        model: embed
"""
