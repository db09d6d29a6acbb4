"""What a provider is, and how one attempt can fail.

A provider turns an OpenAI-shaped request body into a call to its upstream and returns
OpenAI-shaped answers (a completion dict, or chunk dicts for a stream). Providers are plugins:
built-ins and third-party ones register through the ``register_providers`` hook.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar

from pilothouse.errors import (
    BadRequest,
    PilothouseError,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)

if TYPE_CHECKING:
    from pilothouse.gateway.config import Deployment
    from pilothouse.gateway.http import Upstream

#: Why an attempt failed; the router decides from this whether to retry or fall back.
RETRYABLE = "retryable"  # 429, 5xx, timeouts, connection errors: same deployment again
CONTEXT_WINDOW = "context_window"  # prompt too long for this model: try context-window fallbacks
CONTENT_POLICY = "content_policy"  # refused by the provider's filter: try content-policy fallbacks
FATAL = "fatal"  # the request itself is wrong (400, 404...): answer the client now


class AttemptFailed(Exception):
    """One call to one deployment failed; ``error`` is what the client sees if all fail."""

    def __init__(self, error: PilothouseError, kind: str = RETRYABLE) -> None:
        super().__init__(error.detail)
        self.error = error
        self.kind = kind

    @property
    def retryable(self) -> bool:
        return self.kind == RETRYABLE

    @classmethod
    def timeout(cls, message: str) -> AttemptFailed:
        return cls(UpstreamTimeout(f"upstream timed out: {message}"))

    @classmethod
    def unreachable(cls, exc: BaseException) -> AttemptFailed:
        return cls(UpstreamError(f"upstream unreachable: {type(exc).__name__}: {exc}"))

    @classmethod
    def from_status(cls, status: int, message: str, code: str | None = None) -> AttemptFailed:
        """Classify an upstream error answer by status and message."""
        text = f"upstream answered {status}: {message}"
        lowered = (message + " " + (code or "")).lower()
        if status in (400, 413, 422) and (
            "context_length" in lowered
            or "context window" in lowered
            or "maximum context" in lowered
            or "too long" in lowered
        ):
            return cls(BadRequest(text, code="context_length_exceeded"), CONTEXT_WINDOW)
        if status == 400 and ("content_policy" in lowered or "content_filter" in lowered):
            return cls(BadRequest(text, code="content_policy_violation"), CONTENT_POLICY)
        if status == 429:
            return cls(RateLimited(text, code="upstream_rate_limited"))
        if status in (408, 409) or status >= 500:
            return cls(UpstreamError(text))
        if status in (401, 403):
            # The gateway's credentials for this deployment are wrong: another may work.
            return cls(UpstreamError(f"upstream rejected the gateway's credentials: {text}"))
        return cls(BadRequest(text, code=code or "upstream_bad_request"), FATAL)


def error_message(content: bytes) -> tuple[str, str | None]:
    """The message and code inside an upstream error body (OpenAI or Anthropic shape)."""
    import orjson

    try:
        doc = orjson.loads(content)
    except orjson.JSONDecodeError:
        return content[:500].decode(errors="replace") or "no details", None
    err = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(err, dict):
        code = err.get("code") or err.get("type")
        return str(err.get("message") or doc), str(code) if code else None
    if isinstance(err, str):
        return err, None
    return str(doc)[:500], None


class Provider:
    """Base class of providers. Subclasses set ``name`` and implement what they support."""

    name: ClassVar[str] = ""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    async def chat(self, deployment: Deployment, body: dict[str, Any]) -> dict[str, Any]:
        """A chat completion (OpenAI shape) for a non-streaming request."""
        raise AttemptFailed(
            BadRequest(f"provider {self.name!r} does not support chat completions"), FATAL
        )

    def chat_stream(
        self, deployment: Deployment, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """Chat completion chunks (OpenAI shape); the last carries ``usage`` when known."""
        raise AttemptFailed(BadRequest(f"provider {self.name!r} does not stream"), FATAL)

    async def embeddings(self, deployment: Deployment, body: dict[str, Any]) -> dict[str, Any]:
        raise AttemptFailed(
            BadRequest(f"provider {self.name!r} does not support embeddings"), FATAL
        )

    async def completions(self, deployment: Deployment, body: dict[str, Any]) -> dict[str, Any]:
        raise AttemptFailed(
            BadRequest(f"provider {self.name!r} does not support legacy completions"), FATAL
        )

    def completions_stream(
        self, deployment: Deployment, body: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        raise AttemptFailed(
            BadRequest(f"provider {self.name!r} does not stream legacy completions"), FATAL
        )
