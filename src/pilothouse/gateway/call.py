"""One gateway request as the hooks, the router and the trace see it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pilothouse.errors import PilothouseError
    from pilothouse.gateway.config import Deployment
    from pilothouse.identity.keys import ApiKey
    from pilothouse.runtime import Runtime


@dataclass(slots=True, eq=False)
class Call:
    """The per-request context handed to ``gateway_request`` / ``gateway_response`` hooks.

    Hooks may rewrite ``body`` (before routing), add entries to ``metadata`` (recorded as
    trace attributes ``pilothouse.<key>``), set ``prompt_name``/``prompt_version``, and add
    ``response_headers``.
    """

    runtime: Runtime
    api_key: ApiKey
    operation: str  # chat, embeddings, completions
    body: dict[str, Any]
    request_id: str
    headers: dict[str, str]  # request headers, lowercased names, without authorization
    stream: bool = False
    model: str = ""  # as requested
    user: str | None = None
    session_id: str | None = None
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    prompt_name: str | None = None
    prompt_version: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    started_ns: int = field(default_factory=time.time_ns)
    started: float = field(default_factory=time.perf_counter)
    # --- filled while routing -----------------------------------------------------------
    deployment: Deployment | None = None
    served_model: str | None = None  # the model name the upstream reported
    attempts: int = 0
    upstream_s: float = 0.0  # seconds spent waiting on upstreams
    usage: dict[str, Any] | None = None
    output: Any = None
    status: str = "ok"  # ok, error, cancelled
    error: PilothouseError | None = None
    first_token_s: float | None = None  # seconds from start to the first content chunk
    output_chunks: int = 0
    cache_hit: bool = False
    cost_usd: float | None = None
    ended: float | None = None

    def overhead_ms(self) -> float:
        """Time spent in the gateway so far, excluding time waiting on upstreams."""
        return max(0.0, (time.perf_counter() - self.started - self.upstream_s) * 1000)

    @property
    def input_tokens(self) -> int | None:
        return _count(self.usage, "prompt_tokens", "input_tokens")

    @property
    def output_tokens(self) -> int | None:
        return _count(self.usage, "completion_tokens", "output_tokens")


def _count(usage: dict[str, Any] | None, name: str, alias: str) -> int | None:
    """A token count of ``usage`` under OpenAI's ``name`` or Anthropic-style ``alias``."""
    if not usage:
        return None
    value = usage.get(name)
    if value is None:
        value = usage.get(alias)
    return value if isinstance(value, int) else None
