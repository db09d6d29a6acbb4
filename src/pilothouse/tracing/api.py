"""Trace query, score and feedback routes of the management API (``/api/traces`` ...)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from pilothouse.api.deps import (
    Caller,
    CursorQ,
    LimitQ,
    Page,
    ProjectQ,
    RuntimeDep,
    Strict,
    decode_cursor,
    encode_cursor,
    project_of,
)
from pilothouse.errors import BadRequest, NotFound
from pilothouse.store import traces as store
from pilothouse.store.types import utcnow
from pilothouse.tracing.summary import percentiles, ttft_percentiles

router = APIRouter(tags=["traces"])

TraceId = Annotated[str, Path(pattern=r"^[0-9a-fA-F]{32}$", description="32 hex characters")]
INTERVALS = {"minute": 60, "hour": 3600, "day": 86400}


def _time(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


def _ns(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1e9)


# --- models -----------------------------------------------------------------------------------


class TraceSummary(BaseModel):
    """One trace as listed: its root span's name, time, totals and conversation fields."""

    trace_id: str
    name: str | None
    start_time: datetime
    end_time: datetime
    duration_ms: float
    status: Literal["ok", "error"]
    span_count: int
    error_count: int
    service_name: str | None
    model: str | None
    provider: str | None
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float
    session_id: str | None
    user_id: str | None
    tags: list[str]
    environment: str | None
    release: str | None
    prompt_name: str | None
    prompt_version: int | None
    input: str | None
    output: str | None


class ScoreOut(BaseModel):
    id: int
    trace_id: str
    span_id: str | None
    name: str
    data_type: Literal["numeric", "boolean", "categorical"]
    value: float | None
    string_value: str | None
    source: str
    comment: str | None
    author: str | None
    metadata: dict[str, Any]
    created_at: datetime


class SpanNode(BaseModel):
    """A span with its timing inside the trace and its children."""

    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start_time: datetime
    end_time: datetime
    offset_ms: float = Field(description="Start relative to the trace's start")
    duration_ms: float
    status_code: str
    status_message: str | None
    operation: str | None
    provider: str | None
    request_model: str | None
    response_model: str | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    ttft_ms: float | None
    session_id: str | None
    user_id: str | None
    tags: list[str]
    prompt_name: str | None
    prompt_version: int | None
    environment: str | None
    release: str | None
    input: Any
    output: Any
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    links: list[dict[str, Any]]
    resource: dict[str, Any]
    scope: dict[str, Any]
    children: list[SpanNode]


class TraceDetail(TraceSummary):
    spans: list[SpanNode] = Field(description="Root spans; each holds its children")
    scores: list[ScoreOut]


class SessionOut(BaseModel):
    session_id: str
    traces: list[TraceSummary]


class AggregateRow(BaseModel):
    bucket: datetime | None = Field(description="Start of the time bucket (null in totals)")
    value: str = Field(description="The group (model, user, tag or name); '' when ungrouped")
    count: int
    errors: int
    error_rate: float | None
    avg_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: float
    blocked: int = Field(description="Calls a guardrail blocked (spans with verdict block)")
    ttft_count: int = Field(description="Spans with a time to first token (streamed calls)")
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None


class Aggregates(BaseModel):
    group_by: str
    interval_s: int
    start_time: datetime
    end_time: datetime
    data: list[AggregateRow]
    totals: list[AggregateRow]


class ScoreCreate(Strict):
    trace_id: str = Field(pattern=r"^[0-9a-fA-F]{32}$")
    span_id: str | None = Field(None, pattern=r"^[0-9a-fA-F]{16}$")
    name: str = Field(min_length=1, max_length=200)
    value: float | bool | str = Field(description="A number, a boolean or a category")
    comment: str | None = Field(None, max_length=10_000)
    source: Literal["api", "sdk", "eval", "evaluator", "human"] = "api"
    author: str | None = Field(None, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)
    project_id: int | None = Field(None, ge=1, le=2**62)


class FeedbackCreate(Strict):
    trace_id: str = Field(pattern=r"^[0-9a-fA-F]{32}$")
    span_id: str | None = Field(None, pattern=r"^[0-9a-fA-F]{16}$")
    value: Literal["up", "down"] | bool | float = Field(
        description="Thumbs up/down (or true/false, or a rating)"
    )
    comment: str | None = Field(None, max_length=10_000)
    user_id: str | None = Field(None, max_length=200)
    name: str = Field("user_feedback", min_length=1, max_length=200)


# --- conversions ------------------------------------------------------------------------------


def summary_of(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["start_time"] = _time(row["start_ns"])
    out["end_time"] = _time(row["end_ns"])
    out["status"] = "error" if row["error_count"] else "ok"
    out["total_tokens"] = row["input_tokens"] + row["output_tokens"]
    return out


def span_tree(rows: list[Any], trace_start_ns: int) -> list[dict[str, Any]]:
    """Span rows as a forest: spans whose parent is missing become roots."""
    nodes: dict[str, dict[str, Any]] = {}
    for row in rows:
        node = dict(row)
        node["start_time"] = _time(row["start_ns"])
        node["end_time"] = _time(row["end_ns"])
        node["offset_ms"] = (row["start_ns"] - trace_start_ns) / 1e6
        node["children"] = []
        nodes[row["span_id"]] = node
    roots = []
    for node in nodes.values():
        parent = nodes.get(node["parent_span_id"] or "")
        if parent is not None and parent is not node:
            parent["children"].append(node)
        else:
            roots.append(node)
    return roots


def _cursor(sort: str, row: Any) -> str | None:
    value = {
        "start_time": row["start_ns"],
        "latency": row["duration_ms"],
        "cost": row["cost_usd"],
        "tokens": row["input_tokens"] + row["output_tokens"],
    }[sort]
    return encode_cursor(orjson.dumps([sort, value, row["trace_id"]]).decode())


def _after(sort: str, cursor: str | None) -> tuple[Any, str] | None:
    raw = decode_cursor(cursor)
    if raw is None:
        return None
    try:
        kind, value, trace_id = orjson.loads(raw)
    except (orjson.JSONDecodeError, ValueError, TypeError):
        raise BadRequest("cursor is not one this API returned", param="cursor") from None
    if kind != sort or not isinstance(trace_id, str) or not isinstance(value, int | float):
        raise BadRequest("cursor belongs to another sort order", param="cursor")
    return value, trace_id


# --- routes -----------------------------------------------------------------------------------


@router.get("/api/traces", response_model=Page[TraceSummary])
def list_traces(
    runtime: RuntimeDep,
    caller: Caller,
    project_id: ProjectQ = None,
    start: Annotated[datetime | None, Query(description="Traces starting at or after")] = None,
    end: Annotated[datetime | None, Query(description="Traces starting before")] = None,
    name: Annotated[str | None, Query(max_length=1000)] = None,
    model: Annotated[str | None, Query(max_length=500)] = None,
    provider: Annotated[str | None, Query(max_length=200)] = None,
    user_id: Annotated[str | None, Query(max_length=500)] = None,
    session_id: Annotated[str | None, Query(max_length=500)] = None,
    tag: Annotated[list[str] | None, Query(description="Has every one of these tags")] = None,
    status: Annotated[Literal["ok", "error"] | None, Query()] = None,
    min_latency_ms: Annotated[float | None, Query(ge=0)] = None,
    max_latency_ms: Annotated[float | None, Query(ge=0)] = None,
    min_cost_usd: Annotated[float | None, Query(ge=0)] = None,
    max_cost_usd: Annotated[float | None, Query(ge=0)] = None,
    min_tokens: Annotated[int | None, Query(ge=0)] = None,
    max_tokens: Annotated[int | None, Query(ge=0)] = None,
    score_name: Annotated[str | None, Query(max_length=200)] = None,
    score_min: Annotated[float | None, Query()] = None,
    score_max: Annotated[float | None, Query()] = None,
    score_value: Annotated[str | None, Query(max_length=500, description="Categorical")] = None,
    q: Annotated[str | None, Query(max_length=500, description="Text in input or output")] = None,
    environment: Annotated[str | None, Query(max_length=200)] = None,
    release: Annotated[str | None, Query(max_length=200)] = None,
    sort: Annotated[Literal["start_time", "latency", "cost", "tokens"], Query()] = "start_time",
    order: Annotated[Literal["desc", "asc"], Query()] = "desc",
    limit: LimitQ = 50,
    cursor: CursorQ = None,
) -> Any:
    """Traces of a project, newest first by default, filtered and paginated by cursor."""
    project = project_of(runtime, caller, project_id, "read")
    filters = store.TraceFilter(
        start_ns_from=_ns(start),
        start_ns_to=_ns(end),
        name=name,
        model=model,
        provider=provider,
        user_id=user_id,
        session_id=session_id,
        tags=tag or (),
        status=status,
        min_latency_ms=min_latency_ms,
        max_latency_ms=max_latency_ms,
        min_cost_usd=min_cost_usd,
        max_cost_usd=max_cost_usd,
        min_tokens=min_tokens,
        max_tokens=max_tokens,
        score_name=score_name,
        score_min=score_min,
        score_max=score_max,
        score_value=score_value,
        text=q,
        environment=environment,
        release=release,
    )
    with runtime.db.read() as conn:
        rows = store.list_traces(
            conn,
            project,
            filters,
            sort=sort,
            descending=order == "desc",
            after=_after(sort, cursor),
            limit=limit + 1,
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "data": [summary_of(r) for r in rows],
        "next_cursor": _cursor(sort, rows[-1]) if more else None,
    }


@router.get("/api/traces/aggregates", response_model=Aggregates)
def aggregates(
    runtime: RuntimeDep,
    caller: Caller,
    project_id: ProjectQ = None,
    start: Annotated[datetime | None, Query(description="Default: 24 hours ago")] = None,
    end: Annotated[datetime | None, Query(description="Default: now")] = None,
    interval: Annotated[Literal["minute", "hour", "day"], Query()] = "hour",
    group_by: Annotated[Literal["none", "model", "user", "tag", "name"], Query()] = "none",
    value: Annotated[list[str] | None, Query(description="Only these groups")] = None,
) -> Any:
    """Count, error rate, latency and time-to-first-token percentiles, tokens, cost and
    guardrail blocks per time bucket (from rollups).

    Ungrouped and by user, tag or name, ``count`` is traces (root spans); by model it is model
    calls. Tokens, cost, blocks and TTFT include every span.
    """
    project = project_of(runtime, caller, project_id, "read")
    end_s = int((_ns(end) or time.time_ns()) // 1_000_000_000)
    start_ns = _ns(start)
    start_s = start_ns // 1_000_000_000 if start_ns is not None else end_s - 86400
    if start_s >= end_s:
        raise BadRequest("start must be before end", param="query.start")
    interval_s = INTERVALS[interval]
    if interval_s >= 3600:
        start_s = start_s // 3600 * 3600  # hourly rollups: the period starts on the hour
    if (end_s - start_s) // interval_s > 10_000:
        raise BadRequest("too many buckets: widen the interval", param="query.interval")
    dimension = "all" if group_by == "none" else group_by
    with runtime.db.read() as conn:
        rows = store.rollup_series(
            conn, project, dimension, start_s, end_s + 1, interval_s, values=value or ()
        )
    data = [_aggregate(row[1], row[2:9], row[9], row[10], row[0]) for row in rows]
    groups: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        groups.setdefault(row[1], []).append(row)
    totals = []
    for v, group in sorted(groups.items()):
        # Column sums: zip and sum run in C, not a Python loop per value.
        sums = [sum(column) for column in zip(*(row[2:9] for row in group), strict=True)]
        latency = [sum(column) for column in zip(*(row[9] for row in group), strict=True)]
        ttft = [sum(column) for column in zip(*(row[10] for row in group), strict=True)]
        totals.append(_aggregate(v, sums, latency, ttft, None))
    body = {
        "group_by": group_by,
        "interval_s": interval_s,
        "start_time": datetime.fromtimestamp(start_s, UTC),
        "end_time": datetime.fromtimestamp(end_s, UTC),
        "data": data,
        "totals": totals,
    }
    # Built to match Aggregates already: skip re-validating thousands of rows (dashboards
    # poll this), orjson writes it directly.
    return Response(orjson.dumps(body), media_type="application/json")


def _aggregate(
    value: str,
    sums: Sequence[Any],
    histogram: Sequence[int],
    ttft: Sequence[int],
    bucket: int | None,
) -> dict[str, Any]:
    """One aggregate row from the sums and histograms of ``store.rollup_series``."""
    count, errors, tokens_in, tokens_out, cost, duration, blocked = sums
    timed = sum(histogram)
    p50, p95 = percentiles(histogram, (0.5, 0.95))
    ttft_count = sum(ttft)
    # Most buckets of most projects have no streamed call: skip the percentiles then.
    ttft_p50, ttft_p95 = ttft_percentiles(ttft, (0.5, 0.95)) if ttft_count else (None, None)
    return {
        "bucket": datetime.fromtimestamp(bucket, UTC) if bucket is not None else None,
        "value": value,
        "count": count,
        "errors": errors,
        "error_rate": (errors / count) if count else None,
        "avg_ms": (duration / timed) if timed else None,
        "p50_ms": p50,
        "p95_ms": p95,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "cost_usd": cost,
        "blocked": blocked,
        "ttft_count": ttft_count,
        "ttft_p50_ms": ttft_p50,
        "ttft_p95_ms": ttft_p95,
    }


@router.get("/api/traces/{trace_id}", response_model=TraceDetail)
def get_trace(
    trace_id: TraceId, runtime: RuntimeDep, caller: Caller, project_id: ProjectQ = None
) -> Any:
    """One trace: its summary, its spans as a tree with timings, and its scores."""
    project = project_of(runtime, caller, project_id, "read")
    trace_id = trace_id.lower()
    with runtime.db.read() as conn:
        row = store.get_trace(conn, project, trace_id)
        if row is None:
            raise NotFound(f"trace {trace_id} not found in project {project}")
        spans = store.spans_of(conn, project, trace_id)
        scores = store.scores_of(conn, project, [trace_id])
    out = summary_of(row)
    out["spans"] = span_tree(spans, row["start_ns"])
    out["scores"] = [dict(s) for s in scores]
    return out


@router.get("/api/sessions/{session_id}", response_model=SessionOut)
def get_session(
    session_id: Annotated[str, Path(max_length=500)],
    runtime: RuntimeDep,
    caller: Caller,
    project_id: ProjectQ = None,
) -> Any:
    """Every trace of a conversation, oldest first."""
    project = project_of(runtime, caller, project_id, "read")
    with runtime.db.read() as conn:
        rows = store.session_traces(conn, project, session_id)
    if not rows:
        raise NotFound(f"session {session_id!r} not found in project {project}")
    return {"session_id": session_id, "traces": [summary_of(r) for r in rows]}


def _score_values(value: float | bool | str) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"data_type": "boolean", "value": 1.0 if value else 0.0, "string_value": None}
    if isinstance(value, int | float):
        return {"data_type": "numeric", "value": float(value), "string_value": None}
    return {"data_type": "categorical", "value": None, "string_value": value}


@router.post("/api/scores", response_model=ScoreOut, status_code=201)
def create_score(body: ScoreCreate, runtime: RuntimeDep, caller: Caller) -> Any:
    """Attach a score (number, boolean or category) to a trace or one of its spans."""
    project = project_of(runtime, caller, body.project_id, "write")
    with runtime.db.write() as conn:
        row = store.insert_score(
            conn,
            project_id=project,
            trace_id=body.trace_id.lower(),
            span_id=body.span_id.lower() if body.span_id else None,
            name=body.name,
            source=body.source,
            comment=body.comment,
            author=body.author or caller.name,
            metadata=body.metadata,
            created_at=utcnow(),
            **_score_values(body.value),
        )
    return dict(row)


#: Browsers may post feedback from any origin (the key, not the origin, is the credential).
FEEDBACK_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "86400",
}


@router.options("/api/feedback", include_in_schema=False)
def feedback_preflight() -> Response:
    return Response(status_code=204, headers=FEEDBACK_CORS)


@router.post("/api/feedback", response_model=ScoreOut, status_code=201)
def create_feedback(
    body: FeedbackCreate, runtime: RuntimeDep, caller: Caller, response: Response
) -> Any:
    """End-user feedback (thumbs up/down, comment) on a trace; an ``ingest`` key is enough.

    Give browsers a key holding only the ``ingest`` scope: it can send spans and feedback but
    read nothing. Cross-origin requests are allowed (CORS) on this route only.
    """
    response.headers.update(FEEDBACK_CORS)
    project = project_of(runtime, caller, None, "ingest")
    value: float | bool | str = body.value
    if value in ("up", "down"):
        value = value == "up"
    with runtime.db.write() as conn:
        row = store.insert_score(
            conn,
            project_id=project,
            trace_id=body.trace_id.lower(),
            span_id=body.span_id.lower() if body.span_id else None,
            name=body.name,
            source="feedback",
            comment=body.comment,
            author=body.user_id,
            metadata={},
            created_at=utcnow(),
            **_score_values(value),
        )
    return dict(row)


__all__ = ["router"]
