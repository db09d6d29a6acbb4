"""What an experiment runs over each dataset item: a prompt version, a model, a Python
callable or an HTTP endpoint.

Target configs (JSON/YAML)::

    {"type": "prompt", "prompt": "qa", "version": 2, "model": "gpt-4o-mini", "params": {...}}
    {"type": "prompt", "prompt": "qa", "label": "staging"}          # model from the prompt
    {"type": "model", "model": "mock/echo"}                          # item input as messages
    {"type": "python", "function": "my_app.bot:answer"}              # answer(input) -> output
    {"type": "http", "url": "http://127.0.0.1:8000/answer", "headers": {...}}

Prompt and model targets call the gateway in-process (:mod:`pilothouse.evals.models`), so
routing, fallbacks, limits, budgets and cost apply as for any client.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import httpx

from pilothouse.errors import BadRequest, UpstreamError
from pilothouse.evals.evaluators import as_text, load_function
from pilothouse.evals.models import ModelClient

TYPES = ("prompt", "model", "python", "http")


@dataclass
class Output:
    """A target's answer to one item."""

    output: Any
    latency_ms: float
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    model: str | None = None


def check_target(config: Any) -> dict[str, Any]:
    """The target config, checked; BadRequest naming the wrong field."""
    if not isinstance(config, Mapping):
        raise BadRequest("target: expected an object", param="target")
    kind = config.get("type")
    if kind is None:
        kind = next((k for k in ("prompt", "function", "url", "model") if k in config), None)
        kind = {"function": "python", "url": "http"}.get(kind or "", kind)
    if kind not in TYPES:
        raise BadRequest(f"target.type: one of {', '.join(TYPES)}", param="target.type")
    out = {**config, "type": kind}
    required = {"prompt": "prompt", "model": "model", "python": "function", "http": "url"}[kind]
    if not isinstance(out.get(required), str) or not out[required]:
        raise BadRequest(f"target.{required}: required for a {kind} target", param="target")
    if kind == "prompt" and out.get("label") is not None and out.get("version") is not None:
        raise BadRequest("target: give a label or a version, not both", param="target.version")
    if not isinstance(out.get("params", {}), dict):
        raise BadRequest("target.params: expected an object", param="target.params")
    return out


def messages_of(value: Any) -> list[dict[str, Any]]:
    """An item input as chat messages."""
    if isinstance(value, dict) and isinstance(value.get("messages"), list):
        return list(value["messages"])
    if isinstance(value, dict) and len(value) == 1:
        value = next(iter(value.values()))
    return [{"role": "user", "content": as_text(value)}]


class Target:
    """Answers items; one instance per experiment run."""

    def __init__(self, config: Mapping[str, Any], models: ModelClient | None) -> None:
        self.config = check_target(config)
        self.kind: str = self.config["type"]
        self.models = models
        self.func = load_function(self.config["function"]) if self.kind == "python" else None
        self._http: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def answer(self, value: Any, traceparent: str | None = None) -> Output:
        if self.kind in ("prompt", "model"):
            return await self._gateway(value, traceparent)
        started = time.perf_counter()
        if self.kind == "python":
            assert self.func is not None
            if inspect.iscoroutinefunction(self.func):
                output = await self.func(value)
            else:
                output = await anyio.to_thread.run_sync(self.func, value)
        else:
            output = await self._post(value, traceparent)
        return Output(output, (time.perf_counter() - started) * 1000)

    async def _gateway(self, value: Any, traceparent: str | None) -> Output:
        if self.models is None:
            raise BadRequest("this target needs the gateway")
        c = self.config
        body: dict[str, Any] = dict(c.get("params") or {})
        if c.get("model"):
            body["model"] = c["model"]
        if self.kind == "prompt":
            variables = value if isinstance(value, dict) else {"input": value}
            extra = variables.get("messages") if isinstance(variables, dict) else None
            ref: dict[str, Any] = {
                "name": c["prompt"],
                "variables": {k: v for k, v in variables.items() if k != "messages"},
            }
            if c.get("version") is not None:
                ref["version"] = int(c["version"])
            else:
                ref["label"] = c.get("label") or "latest"
            body["prompt"] = ref
            if isinstance(extra, list):
                body["messages"] = extra
        else:
            body["messages"] = messages_of(value)
        answer = await self.models.chat(body, traceparent)
        choices = answer.response.get("choices") or [{}]
        message = choices[0].get("message") or {}
        output = message.get("content") if not message.get("tool_calls") else message
        return Output(
            output,
            answer.latency_ms,
            answer.cost_usd,
            answer.input_tokens,
            answer.output_tokens,
            answer.response.get("model"),
        )

    async def _post(self, value: Any, traceparent: str | None) -> Any:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=float(self.config.get("timeout", 120)))
        headers = dict(self.config.get("headers") or {})
        if traceparent:
            headers["traceparent"] = traceparent
        try:
            response = await self._http.post(
                self.config["url"], json={"input": value}, headers=headers
            )
        except httpx.HTTPError as exc:
            raise UpstreamError(f"target {self.config['url']}: {exc}") from None
        if response.status_code >= 300:
            raise UpstreamError(f"target answered {response.status_code}: {response.text[:200]}")
        if "json" not in response.headers.get("content-type", ""):
            return response.text
        doc = response.json()
        return doc.get("output", doc) if isinstance(doc, dict) else doc
