"""The normalized span every producer (OTLP ingestion, the gateway, the SDK) hands the writer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Span:
    """One span: OpenTelemetry's fields plus columns extracted for LLM work."""

    project_id: int
    trace_id: str  # 32 lowercase hex characters
    span_id: str  # 16 lowercase hex characters
    name: str
    start_time_ns: int
    end_time_ns: int
    parent_span_id: str | None = None
    kind: str = "internal"  # internal, server, client, producer, consumer
    status_code: str = "unset"  # unset, ok, error
    status_message: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)
    scope: dict[str, Any] = field(default_factory=dict)
    # --- normalized at ingest -----------------------------------------------------------
    operation: str | None = None  # chat, embeddings, completion, retrieval, tool, agent, chain
    provider: str | None = None
    request_model: str | None = None
    response_model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    input: Any = None  # text or list of chat messages
    output: Any = None
    ttft_ms: float | None = None
    session_id: str | None = None
    user_id: str | None = None
    tags: list[str] = field(default_factory=list)
    prompt_name: str | None = None
    prompt_version: int | None = None
    environment: str | None = None
    release: str | None = None
    service_name: str | None = None  # the resource's service.name

    @property
    def duration_ms(self) -> float:
        return (self.end_time_ns - self.start_time_ns) / 1e6
