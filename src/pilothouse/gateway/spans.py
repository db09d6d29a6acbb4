"""Every gateway call becomes one trace span, handed to the trace writer without waiting."""

from __future__ import annotations

import logging
import time
from random import getrandbits
from typing import Any

import orjson

from pilothouse.gateway.call import Call
from pilothouse.tracing.model import Span

log = logging.getLogger(__name__)

#: The gateway's span names, one per operation.
NAMES = {"chat": "chat", "embeddings": "embeddings", "completions": "text_completion"}


def _parent(headers: dict[str, str]) -> tuple[str, str | None]:
    """Trace id and parent span id from a W3C ``traceparent`` header, else a new trace.

    Ids come from the non-cryptographic generator: they must be unique, not secret, and
    ``secrets`` costs a system call per id on the hot path."""
    value = headers.get("traceparent", "")
    parts = value.split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16:
        trace_id, parent = parts[1].lower(), parts[2].lower()
        if trace_id.strip("0") and parent.strip("0"):
            return trace_id, parent
    return f"{getrandbits(128):032x}", None


def _json_size(value: Any) -> float:
    """Bytes of ``value`` as JSON (at least the length of any string in it)."""
    try:
        return len(orjson.dumps(value, default=str))
    except (orjson.JSONEncodeError, TypeError):
        return float("inf")  # e.g. an integer beyond 64 bits: walk it instead


def truncate(value: Any, limit: int) -> Any:
    """Cut long strings inside messages so one trace stays bounded."""
    if limit <= 0:
        return value
    if isinstance(value, list | dict) and _json_size(value) <= limit:
        return value  # no string inside can be longer: skip the walk (the common case)
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + f"... [{len(value) - limit} more]"
    if isinstance(value, list):
        return [truncate(v, limit) for v in value]
    if isinstance(value, dict):
        return {k: truncate(v, limit) for k, v in value.items()}
    return value


def build_span(call: Call, *, capture: bool = True, max_chars: int = 0) -> Span:
    """The span of a finished call."""
    end_ns = call.started_ns + int(((call.ended or time.perf_counter()) - call.started) * 1e9)
    trace_id, parent = _parent(call.headers)
    deployment = call.deployment
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": call.operation,
        "gen_ai.request.model": call.model,
        "pilothouse.request_id": call.request_id,
        "pilothouse.attempts": call.attempts,
        "pilothouse.stream": call.stream,
        "pilothouse.status": call.status,
        "pilothouse.cache_hit": call.cache_hit,
        "pilothouse.key_id": call.api_key.id,
        "pilothouse.overhead_ms": round(call.overhead_ms(), 3),
    }
    if deployment is not None:
        attrs["gen_ai.system"] = deployment.provider
        attrs["pilothouse.deployment"] = deployment.id
        attrs["pilothouse.upstream_model"] = deployment.model
    input_tokens, output_tokens = call.input_tokens, call.output_tokens
    if input_tokens is not None:
        attrs["gen_ai.usage.input_tokens"] = input_tokens
    if output_tokens is not None:
        attrs["gen_ai.usage.output_tokens"] = output_tokens
    ttft_ms = None
    if call.stream and call.first_token_s is not None:
        ttft_ms = round(call.first_token_s * 1000, 3)
        tokens = output_tokens or call.output_chunks
        if tokens > 1 and call.ended is not None:
            generating = call.ended - call.started - call.first_token_s
            attrs["pilothouse.tpot_ms"] = round(generating * 1000 / (tokens - 1), 3)
    for key, value in call.metadata.items():
        attrs[f"pilothouse.{key}"] = value
    body = call.body
    params = {
        k: body[k]
        for k in (
            "temperature",
            "top_p",
            "max_tokens",
            "max_completion_tokens",
            "seed",
            "n",
            "stop",
        )
        if k in body
    }
    if params:
        attrs["gen_ai.request.parameters"] = params
    if body.get("tools"):
        attrs["gen_ai.request.tools"] = [
            t.get("function", {}).get("name") for t in body["tools"] if isinstance(t, dict)
        ]
    span_input: Any = None
    span_output: Any = None
    if capture:
        raw_input = body.get("messages", body.get("input", body.get("prompt")))
        span_input = truncate(raw_input, max_chars)
        span_output = truncate(call.output, max_chars)
    error = call.error
    return Span(
        project_id=call.api_key.project_id,
        trace_id=trace_id,
        span_id=f"{getrandbits(64):016x}",
        parent_span_id=parent,
        name=f"{NAMES.get(call.operation, call.operation)} {call.model}",
        start_time_ns=call.started_ns,
        end_time_ns=end_ns,
        kind="server",
        status_code="error" if call.status == "error" else "ok",
        status_message=(error.detail if error is not None else call.status)
        if call.status != "ok"
        else None,
        attributes=attrs,
        resource={"service.name": "pilothouse-gateway"},
        scope={"name": "pilothouse.gateway"},
        operation=call.operation,
        provider=deployment.provider if deployment is not None else None,
        request_model=call.model,
        response_model=call.served_model or (deployment.model if deployment else None),
        input_tokens=input_tokens,
        output_tokens=output_tokens if output_tokens is not None else (call.output_chunks or None),
        cost_usd=call.cost_usd,
        input=span_input,
        output=span_output,
        ttft_ms=ttft_ms,
        session_id=call.session_id,
        user_id=call.user,
        tags=call.tags,
        prompt_name=call.prompt_name,
        prompt_version=call.prompt_version,
    )


def submit(call: Call, *, capture: bool, max_chars: int) -> None:
    """Hand the call's span to ``runtime.traces`` (when tracing is installed); never blocks."""
    traces = getattr(call.runtime, "traces", None)
    if traces is None:
        return
    try:
        traces.submit([build_span(call, capture=capture, max_chars=max_chars)])
    except Exception:
        log.exception("could not submit the gateway span of %s", call.request_id)
