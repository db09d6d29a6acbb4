"""What new spans add to the ``traces`` summary rows and the per-minute ``trace_rollups``.

Both are computed from spans that were not stored before, so a re-sent span changes nothing.
Rollup dimensions: ``all`` (the project), ``user``, ``tag`` and ``name`` (the root span's name)
count traces (their root spans) plus the tokens and cost of every span of those traces;
``model`` counts model calls (spans with a model) with their own latency, tokens and cost.
Guardrail blocks (spans whose ``pilothouse.guardrails`` verdict is ``block``) and the time to
first token of streamed calls (``ttft_ms``) count per span, like tokens, in every dimension.
"""

from __future__ import annotations

import math
import operator
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from itertools import accumulate
from typing import Any

import orjson

from pilothouse.store.traces import (
    LATENCY_BOUNDS_MS,
    LATENCY_BUCKETS,
    LATENCY_RATIO,
    ROLLUP_SECONDS,
    TTFT_BOUNDS_MS,
    TTFT_BUCKETS,
    TTFT_RATIO,
)
from pilothouse.tracing.model import Span

#: Longest input/output text kept on the trace row (the spans keep everything).
SUMMARY_TEXT_CHARS = 20_000
_LOG_RATIO = math.log(LATENCY_RATIO)
_GUARDRAILS = "pilothouse.guardrails"


def as_text(value: Any) -> str | None:
    """A value shown and searched as text: strings as they are, the rest as JSON."""
    if value is None:
        return None
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text[:SUMMARY_TEXT_CHARS]


def latency_bucket(ms: float) -> int:
    """Index of the latency histogram bucket holding ``ms``."""
    if ms < 1.0:
        return 0
    return min(LATENCY_BUCKETS - 1, int(math.log(ms) / _LOG_RATIO) + 1)


def ttft_bucket(ms: float) -> int:
    """Index of the time-to-first-token histogram bucket holding ``ms``."""
    if ms < 1.0:
        return 0
    return min(TTFT_BUCKETS - 1, int(math.log2(ms)) + 1)


def percentile(histogram: list[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) estimated from a latency histogram, in ms."""
    return percentiles(histogram, (q,))[0]


def percentiles(
    histogram: Sequence[int],
    qs: tuple[float, ...],
    bounds: Sequence[float] = LATENCY_BOUNDS_MS,
    ratio: float = LATENCY_RATIO,
) -> list[float | None]:
    """Several quantiles (0..1) of a latency histogram, in ms, interpolated in their bucket;
    ``bounds`` and ``ratio`` describe the histogram (the TTFT one: :func:`ttft_percentiles`)."""
    cumulative = list(accumulate(histogram))
    total = cumulative[-1] if cumulative else 0
    if not total:
        return [None] * len(qs)
    out: list[float | None] = []
    for q in qs:
        rank = q * total
        # The first bucket whose cumulative count reaches the rank (and holds something).
        i = bisect_left(cumulative, rank) if rank > 0 else bisect_right(cumulative, 0)
        if i >= len(bounds):
            out.append(bounds[-1])
            continue
        seen = cumulative[i - 1] if i else 0
        low = bounds[i - 1] if i else 0.0
        high = bounds[i] if i < len(bounds) - 1 else low * ratio
        out.append(low + (high - low) * ((rank - seen) / histogram[i]))
    return out


def ttft_percentiles(histogram: Sequence[int], qs: tuple[float, ...]) -> list[float | None]:
    """Quantiles of a time-to-first-token histogram, in ms."""
    return percentiles(histogram, qs, TTFT_BOUNDS_MS, TTFT_RATIO)


def group_by_trace(spans: Iterable[Span]) -> dict[tuple[int, str], list[Span]]:
    groups: dict[tuple[int, str], list[Span]] = {}
    for span in spans:
        groups.setdefault((span.project_id, span.trace_id), []).append(span)
    return groups


def _first(spans: list[Span], attr: str) -> Any:
    for span in spans:
        value = getattr(span, attr)
        if value is not None:
            return value
    return None


def trace_row(project_id: int, trace_id: str, spans: list[Span]) -> dict[str, Any]:
    """The summary these spans of one trace contribute (merged into the stored row).

    The model is the one of the earliest-starting span with a model (the root's, or the
    first model call), with that span's provider and start (``model_start_ns``), so the
    stored row converges on the same model whatever order the spans arrive in.
    """
    if len(spans) == 1:  # every gateway call and many OTLP traces: nothing to merge
        return _one_span_row(project_id, trace_id, spans[0])
    root = None
    for span in spans:
        if span.parent_span_id is None:
            root = span
            break
    ordered = [root, *spans] if root is not None else spans
    model_span = None
    for span in spans:
        if (span.request_model or span.response_model) and (
            model_span is None or span.start_time_ns < model_span.start_time_ns
        ):
            model_span = span
    tags: list[str] = []
    for span in ordered:
        if span.tags:
            tags.extend(t for t in span.tags if t not in tags)
    start = min(s.start_time_ns for s in spans)
    end = max(s.end_time_ns for s in spans)
    fallback = model_span or spans[0]
    carrier = root if root is not None and root.input is not None else fallback
    out_carrier = root if root is not None and root.output is not None else fallback
    return {
        "project_id": project_id,
        "trace_id": trace_id,
        "name": (root or spans[0]).name,
        "has_root": root is not None,
        "start_ns": start,
        "end_ns": end,
        "duration_ms": (end - start) / 1e6,
        "span_count": len(spans),
        "error_count": sum(1 for s in spans if s.status_code == "error"),
        "service_name": _first(ordered, "service_name"),
        "model": (model_span.request_model or model_span.response_model) if model_span else None,
        "provider": model_span.provider if model_span else None,
        "model_start_ns": model_span.start_time_ns if model_span else None,
        "input_tokens": sum(s.input_tokens or 0 for s in spans),
        "output_tokens": sum(s.output_tokens or 0 for s in spans),
        "cost_usd": sum(s.cost_usd or 0.0 for s in spans),
        "session_id": _first(ordered, "session_id"),
        "user_id": _first(ordered, "user_id"),
        "tags": tags,
        "environment": _first(ordered, "environment"),
        "release": _first(ordered, "release"),
        "prompt_name": _first(ordered, "prompt_name"),
        "prompt_version": _first(ordered, "prompt_version"),
        "input": as_text(carrier.input),
        "output": as_text(out_carrier.output),
    }


def _one_span_row(project_id: int, trace_id: str, span: Span) -> dict[str, Any]:
    """:func:`trace_row` of a trace of one span."""
    model = span.request_model or span.response_model
    return {
        "project_id": project_id,
        "trace_id": trace_id,
        "name": span.name,
        "has_root": span.parent_span_id is None,
        "start_ns": span.start_time_ns,
        "end_ns": span.end_time_ns,
        "duration_ms": (span.end_time_ns - span.start_time_ns) / 1e6,
        "span_count": 1,
        "error_count": 1 if span.status_code == "error" else 0,
        "service_name": span.service_name,
        "model": model,
        "provider": span.provider if model else None,
        "model_start_ns": span.start_time_ns if model else None,
        "input_tokens": span.input_tokens or 0,
        "output_tokens": span.output_tokens or 0,
        "cost_usd": span.cost_usd or 0.0,
        "session_id": span.session_id,
        "user_id": span.user_id,
        "tags": list(dict.fromkeys(span.tags)) if span.tags else [],
        "environment": span.environment,
        "release": span.release,
        "prompt_name": span.prompt_name,
        "prompt_version": span.prompt_version,
        "input": as_text(span.input),
        "output": as_text(span.output),
    }


#: Positions in a rollup row (:data:`ROLLUP_COLUMNS` order) of the summed values.
_COUNT, _ERRORS, _IN, _OUT, _COST, _DURATION = range(5, 11)
_LATENCY0 = 11
_BLOCKED = _LATENCY0 + LATENCY_BUCKETS
_TTFT0 = _BLOCKED + 1


class Rollups:
    """Accumulates rollup increments for one batch, one row per key.

    Rows are lists in ``trace_rollups`` column order (what the upsert binds).
    """

    def __init__(self) -> None:
        self.rows: dict[tuple[int, str, int, str], list[Any]] = {}

    def add(
        self,
        key: tuple[int, str, int, str],
        count: int,
        error: bool,
        latency_ms: float | None,
        input_tokens: int,
        output_tokens: int,
        cost_usd: float,
        blocked: int = 0,
        ttfts: Sequence[int] = (),
    ) -> None:
        """Add to the row of ``key``; ``ttfts`` are TTFT histogram bucket indexes."""
        row = self.rows.get(key)
        if row is None:
            project_id, dimension, bucket_s, value = key
            row = [project_id, dimension, ROLLUP_SECONDS, bucket_s, value[:500], 0, 0, 0, 0, 0.0]
            row += _ZERO_TAIL
            self.rows[key] = row
        row[_COUNT] += count
        if error and count:
            row[_ERRORS] += 1
        row[_IN] += input_tokens
        row[_OUT] += output_tokens
        row[_COST] += cost_usd
        if latency_ms is not None and count:
            row[_DURATION] += latency_ms
            row[_LATENCY0 + latency_bucket(latency_ms)] += 1
        if blocked:
            row[_BLOCKED] += blocked
        for i in ttfts:
            row[_TTFT0 + i] += 1

    def add_trace(self, project_id: int, spans: list[Span]) -> None:
        root = None
        for span in spans:
            if span.parent_span_id is None:
                root = span
                break
        user = _first(spans if root is None else [root, *spans], "user_id")
        tags: list[str] = []
        # What the trace adds per minute: [count, error, latency, input, output, cost, blocked,
        # ttft buckets]; the root counts the trace, every span adds its tokens, cost, block
        # and TTFT to its own minute.
        minutes: dict[int, list[Any]] = {}
        for span in spans:
            if span.tags:
                tags.extend(t for t in span.tags if t not in tags)
            bucket = span.start_time_ns // 1_000_000_000 // ROLLUP_SECONDS * ROLLUP_SECONDS
            tokens_in = span.input_tokens or 0
            tokens_out = span.output_tokens or 0
            cost = span.cost_usd or 0.0
            # Blocked by a guardrail (the attribute is the gateway's; an OTLP one may be text).
            decisions = span.attributes.get(_GUARDRAILS)
            block = 1 if isinstance(decisions, dict) and decisions.get("verdict") == "block" else 0
            ttfts = () if span.ttft_ms is None else (ttft_bucket(span.ttft_ms),)
            model = span.request_model or span.response_model
            if model:
                self.add(
                    (project_id, "model", bucket, model),
                    1,
                    span.status_code == "error",
                    span.duration_ms,
                    tokens_in,
                    tokens_out,
                    cost,
                    block,
                    ttfts,
                )
            minute = minutes.get(bucket)
            if minute is None:
                minute = minutes[bucket] = [0, False, None, 0, 0, 0.0, 0, []]
            if span is root:
                minute[0] = 1
                minute[1] = span.status_code == "error"
                minute[2] = span.duration_ms
            minute[3] += tokens_in
            minute[4] += tokens_out
            minute[5] += cost
            minute[6] += block
            minute[7] += ttfts
        values = [("all", ""), *(("tag", t) for t in tags)]
        if user:
            values.append(("user", str(user)))
        if root is not None:
            values.append(("name", root.name))
        for bucket, minute in minutes.items():
            for dimension, value in values:
                self.add((project_id, dimension, bucket, value), *minute)


_ZERO_TAIL = [0.0, *([0] * LATENCY_BUCKETS), 0, *([0] * TTFT_BUCKETS)]


def rollup_rows(groups: dict[tuple[int, str], list[Span]]) -> list[list[Any]]:
    """Minute rows for these spans, plus the hour rows they add up to (column order)."""
    rollups = Rollups()
    for (project_id, _trace_id), spans in groups.items():
        rollups.add_trace(project_id, spans)
    minutes = list(rollups.rows.values())
    hours: dict[tuple[int, str, int, str], list[Any]] = {}
    for row in minutes:
        hour = row[3] // 3600 * 3600
        key = (row[0], row[1], hour, row[4])
        total = hours.get(key)
        if total is None:
            hours[key] = [row[0], row[1], 3600, hour, *row[4:]]
        else:
            total[_COUNT:] = map(operator.add, total[_COUNT:], row[_COUNT:])
    return minutes + list(hours.values())
