"""Model calls of evaluation (targets, judges, embeddings) through the gateway, in-process.

Calls go to the gateway's own ``/v1`` ASGI app over an in-memory transport, so the full path
applies exactly as for any client: prompt rendering, guardrails, routing with retries and
fallbacks, limits, budgets, cost and a trace span. The calls use a short-lived API key of the
experiment's project (created on first use, revoked at the end). The gateway ``Call`` of each
request is captured by this plugin's ``gateway_request`` hook, to read its cost and usage.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from pilothouse.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    PilothouseError,
    RateLimited,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
)
from pilothouse.store.types import utcnow

if TYPE_CHECKING:
    from pilothouse.gateway.call import Call
    from pilothouse.runtime import Runtime

#: Header naming one evaluation request, so the hook can hand its ``Call`` back.
CALL_HEADER = "x-pilothouse-eval-call"
#: Calls in flight, by the header's value (filled by the plugin's ``gateway_request`` hook).
CALLS: dict[str, Call] = {}

#: Errors worth another attempt.
RETRYABLE = (RateLimited, Unavailable, UpstreamError, UpstreamTimeout)


@dataclass
class Answer:
    """A model's answer and what it cost."""

    response: dict[str, Any]
    latency_ms: float
    cost_usd: float | None
    input_tokens: int | None = None
    output_tokens: int | None = None

    @property
    def text(self) -> str:
        choices = self.response.get("choices") or [{}]
        message = choices[0].get("message") or {}
        content = message.get("content")
        return content if isinstance(content, str) else ""


def _error(status: int, body: bytes) -> PilothouseError:
    try:
        doc = orjson.loads(body)
        message = str(doc.get("error", {}).get("message") or body[:200])
    except (orjson.JSONDecodeError, AttributeError):
        message = body[:200].decode(errors="replace")
    text = f"gateway answered {status}: {message}"
    if status == 429:
        return RateLimited(text, retry_after=1.0)
    if status == 503:
        return Unavailable(text, retry_after=1.0)
    if status == 504:
        return UpstreamTimeout(text)
    if status >= 500:
        return UpstreamError(text)
    if status == 404:
        return NotFound(text)
    if status in (401, 403):
        return Forbidden(text)
    return BadRequest(text)


class ModelClient:
    """Chat and embedding calls of one project through the in-process gateway."""

    def __init__(self, runtime: Runtime, project_id: int) -> None:
        self.runtime = runtime
        self.project_id = project_id
        self._key: str | None = None
        self._key_id: int | None = None
        self._client: httpx.AsyncClient | None = None

    def _open(self) -> httpx.AsyncClient:
        if self._client is None:
            from pilothouse.gateway.plugin import gateway_of

            key, row = self.runtime.keys.create(
                self.project_id,
                "evals",
                ["gateway"],
                expires_at=utcnow() + timedelta(days=1),
            )
            self._key, self._key_id = key, int(row["id"])
            transport = httpx.ASGITransport(app=gateway_of(self.runtime).app)
            self._client = httpx.AsyncClient(
                transport=transport,
                base_url="http://pilothouse.internal",
                headers={"authorization": f"Bearer {key}"},
                timeout=None,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._key_id is not None:
            self.runtime.keys.revoke(self._key_id)
            self._key_id = None

    async def post(self, path: str, body: dict[str, Any], traceparent: str | None = None) -> Answer:
        """POST to ``/v1/<path>``; a non-2xx answer raises the matching PilothouseError."""
        client = self._open()
        token = secrets.token_hex(8)
        headers = {CALL_HEADER: token}
        if traceparent:
            headers["traceparent"] = traceparent
        started = time.perf_counter()
        try:
            response = await client.post(f"/v1/{path}", content=orjson.dumps(body), headers=headers)
        finally:
            call = CALLS.pop(token, None)
        latency = (time.perf_counter() - started) * 1000
        if response.status_code >= 300:
            raise _error(response.status_code, response.content)
        return Answer(
            response.json(),
            latency,
            call.cost_usd if call is not None else None,
            call.input_tokens if call is not None else None,
            call.output_tokens if call is not None else None,
        )

    async def chat(self, body: dict[str, Any], traceparent: str | None = None) -> Answer:
        return await self.post("chat/completions", body, traceparent)

    async def embed(self, model: str, texts: list[str]) -> tuple[list[list[float]], Answer]:
        answer = await self.post("embeddings", {"model": model, "input": texts})
        data = sorted(answer.response.get("data") or [], key=lambda d: d.get("index", 0))
        return [list(map(float, d["embedding"])) for d in data], answer
