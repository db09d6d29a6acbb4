"""Every gateway call becomes one trace span, handed to the trace writer without waiting.

On the server's hot path a call is reduced to its *facts*: one flat JSON array (:func:`facts`)
of what the span needs, serialized in C. With ``tracing_writer_process`` on, the array goes as
is to the writer process, which builds the span there (:func:`span_of`); otherwise the span is
built in place. Either way :func:`span_of` is the one place that decides what a gateway span
holds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from random import getrandbits
from typing import Any

import orjson

from pilothouse.gateway.call import Call
from pilothouse.tracing.model import Span

log = logging.getLogger(__name__)

#: The gateway's span names, one per operation.
NAMES = {"chat": "chat", "embeddings": "embeddings", "completions": "text_completion"}
#: Request parameters recorded as ``gen_ai.request.parameters``.
PARAMETERS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "n", "stop")
RESOURCE = {"service.name": "pilothouse-gateway"}
SCOPE = {"name": "pilothouse.gateway"}


def _parent(traceparent: str | None) -> tuple[str, str | None]:
    """Trace id and parent span id from a W3C ``traceparent`` header, else a new trace."""
    parts = (traceparent or "").split("-")
    if len(parts) == 4 and len(parts[1]) == 32 and len(parts[2]) == 16:
        trace_id, parent = parts[1].lower(), parts[2].lower()
        if trace_id.strip("0") and parent.strip("0"):
            return trace_id, parent
    return new_trace_id(), None


def new_trace_id() -> str:
    """A time-ordered trace id: 48 bits of Unix milliseconds, then 80 random bits.

    The trace tables are keyed by trace id: random ids put each new trace on a random page of
    those B-trees, so every batch dirtied pages all over them and the writer's CPU per span
    grew with the store. Ids that start with the time append at the tables' right edge, like
    UUIDv7 does (writer CPU per gateway span 68-86 -> 56-64 us in alternating runs). The
    random part ends the id, where W3C Trace Context level 2 puts it (what sampling reads).
    The generator is the non-cryptographic one: ids must be unique, not secret, and
    ``secrets`` costs a system call per id."""
    return f"{time.time_ns() // 1_000_000:012x}{getrandbits(80):020x}"


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


def facts(call: Call, *, capture: bool = True) -> list[Any]:
    """What the span of a finished call needs, as one flat list of JSON values.

    The order is the contract with :func:`span_of` (which may run in the writer process).
    Without ``capture`` the request body keeps only the parameters the span records."""
    elapsed = (call.ended or time.perf_counter()) - call.started
    deployment = call.deployment
    body = call.body
    if not capture:
        body = {k: body[k] for k in (*PARAMETERS, "tools") if k in body}
    ttft_ms = tpot_ms = None
    if call.stream and call.first_token_s is not None:
        ttft_ms = round(call.first_token_s * 1000, 3)
        tokens = call.output_tokens or call.output_chunks
        if tokens > 1 and call.ended is not None:
            tpot_ms = round((elapsed - call.first_token_s) * 1000 / (tokens - 1), 3)
    error = call.error
    api_key = call.api_key
    return [
        api_key.project_id,
        api_key.id,
        call.headers.get("traceparent"),
        call.started_ns,
        round(elapsed * 1e9),
        call.operation,
        call.model,
        call.request_id,
        call.attempts,
        call.stream,
        call.status,
        call.cache_hit,
        round(call.overhead_ms(), 3),
        None if deployment is None else deployment.provider,
        None if deployment is None else deployment.id,
        None if deployment is None else deployment.model,
        call.input_tokens,
        call.output_tokens,
        call.output_chunks,
        ttft_ms,
        tpot_ms,
        call.metadata or None,
        body,
        capture,
        call.output if capture else None,
        None if error is None else error.detail,
        call.served_model,
        call.cost_usd,
        call.session_id,
        call.user,
        call.tags,
        call.prompt_name,
        call.prompt_version,
    ]


def span_of(values: Sequence[Any], max_chars: int = 0) -> Span:
    """The span a call's :func:`facts` describe (long strings of its content cut at
    ``max_chars``)."""
    (
        project_id,
        key_id,
        traceparent,
        started_ns,
        duration_ns,
        operation,
        model,
        request_id,
        attempts,
        stream,
        status,
        cache_hit,
        overhead_ms,
        provider,
        deployment_id,
        upstream_model,
        input_tokens,
        output_tokens,
        output_chunks,
        ttft_ms,
        tpot_ms,
        metadata,
        body,
        capture,
        output,
        error_detail,
        served_model,
        cost_usd,
        session_id,
        user,
        tags,
        prompt_name,
        prompt_version,
    ) = values
    trace_id, parent = _parent(traceparent)
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": model,
        "pilothouse.request_id": request_id,
        "pilothouse.attempts": attempts,
        "pilothouse.stream": stream,
        "pilothouse.status": status,
        "pilothouse.cache_hit": cache_hit,
        "pilothouse.key_id": key_id,
        "pilothouse.overhead_ms": overhead_ms,
    }
    if deployment_id is not None:
        attrs["gen_ai.system"] = provider
        attrs["pilothouse.deployment"] = deployment_id
        attrs["pilothouse.upstream_model"] = upstream_model
    if input_tokens is not None:
        attrs["gen_ai.usage.input_tokens"] = input_tokens
    if output_tokens is not None:
        attrs["gen_ai.usage.output_tokens"] = output_tokens
    if tpot_ms is not None:
        attrs["pilothouse.tpot_ms"] = tpot_ms
    if metadata:
        for key, value in metadata.items():
            attrs[f"pilothouse.{key}"] = value
    params = {k: body[k] for k in PARAMETERS if k in body}
    if params:
        attrs["gen_ai.request.parameters"] = params
    tools = body.get("tools")
    if tools:
        attrs["gen_ai.request.tools"] = [
            t.get("function", {}).get("name") for t in tools if isinstance(t, dict)
        ]
    span_input: Any = None
    if capture:
        span_input = truncate(
            body.get("messages", body.get("input", body.get("prompt"))), max_chars
        )
        output = truncate(output, max_chars)
    return Span(
        project_id=project_id,
        trace_id=trace_id,
        span_id=f"{getrandbits(64):016x}",
        parent_span_id=parent,
        name=f"{NAMES.get(operation, operation)} {model}",
        start_time_ns=started_ns,
        end_time_ns=started_ns + duration_ns,
        kind="server",
        status_code="error" if status == "error" else "ok",
        status_message=None
        if status == "ok"
        else (status if error_detail is None else error_detail),
        attributes=attrs,
        resource=dict(RESOURCE),
        scope=dict(SCOPE),
        operation=operation,
        provider=provider,
        request_model=model,
        response_model=served_model or upstream_model,
        input_tokens=input_tokens,
        output_tokens=output_tokens if output_tokens is not None else (output_chunks or None),
        cost_usd=cost_usd,
        input=span_input,
        output=output,
        ttft_ms=ttft_ms,
        session_id=session_id,
        user_id=user,
        tags=tags,
        prompt_name=prompt_name,
        prompt_version=prompt_version,
    )


def build_span(call: Call, *, capture: bool = True, max_chars: int = 0) -> Span:
    """The span of a finished call."""
    return span_of(facts(call, capture=capture), max_chars)


def submit(call: Call, *, capture: bool, max_chars: int) -> None:
    """Hand the call's span to ``runtime.traces`` (when tracing is installed); never blocks."""
    traces = getattr(call.runtime, "traces", None)
    if traces is None:
        return
    try:
        process = getattr(traces, "process", None)
        if process is not None:
            process.submit_line(orjson.dumps(facts(call, capture=capture), default=str))
        else:
            traces.submit([build_span(call, capture=capture, max_chars=max_chars)])
    except Exception:
        log.exception("could not submit the gateway span of %s", call.request_id)
