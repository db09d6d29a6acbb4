"""What new spans add to the ``traces`` summary rows and the per-minute ``trace_rollups``.

Both are computed from spans that were not stored before, so a re-sent span changes nothing.
Rollup dimensions: ``all`` (the project), ``user``, ``tag`` and ``name`` (the root span's name)
count traces (their root spans) plus the tokens and cost of every span of those traces;
``model`` counts model calls (spans with a model) with their own latency, tokens and cost.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import orjson

from pilothouse.store.traces import (
    LATENCY_BOUNDS_MS,
    LATENCY_BUCKETS,
    LATENCY_COLUMNS,
    LATENCY_RATIO,
    ROLLUP_SECONDS,
)
from pilothouse.tracing.model import Span

#: Longest input/output text kept on the trace row (the spans keep everything).
SUMMARY_TEXT_CHARS = 20_000
_LOG_RATIO = math.log(LATENCY_RATIO)
_SUMMED = (
    "count",
    "errors",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "duration_ms_sum",
    *LATENCY_COLUMNS,
)


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


def percentile(histogram: list[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) estimated from a latency histogram, in ms."""
    return percentiles(histogram, (q,))[0]


def percentiles(histogram: list[int], qs: tuple[float, ...]) -> list[float | None]:
    """Several quantiles (ascending, 0..1) from one pass over a latency histogram, in ms."""
    total = sum(histogram)
    if total == 0:
        return [None] * len(qs)
    out: list[float | None] = []
    ranks = [q * total for q in qs]
    seen = 0
    for i, count in enumerate(histogram):
        while count and ranks[len(out)] <= seen + count:
            rank = ranks[len(out)]
            low = 0.0 if i == 0 else LATENCY_BOUNDS_MS[i - 1]
            high = LATENCY_BOUNDS_MS[i] if i < LATENCY_BUCKETS - 1 else low * LATENCY_RATIO
            out.append(low + (high - low) * ((rank - seen) / count))
            if len(out) == len(qs):
                return out
        seen += count
    return out + [LATENCY_BOUNDS_MS[-1]] * (len(qs) - len(out))


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
    """The summary these spans of one trace contribute (merged into the stored row)."""
    root = next((s for s in spans if s.parent_span_id is None), None)
    ordered = [root, *spans] if root is not None else spans
    models = [s for s in spans if s.request_model or s.response_model]
    tags: list[str] = []
    for span in ordered:
        tags.extend(t for t in span.tags if t not in tags)
    start = min(s.start_time_ns for s in spans)
    end = max(s.end_time_ns for s in spans)
    carrier = root if root is not None and root.input is not None else (models or spans)[0]
    out_carrier = root if root is not None and root.output is not None else (models or spans)[0]
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
        "model": (models[0].request_model or models[0].response_model) if models else None,
        "provider": _first(models, "provider") if models else None,
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


class Rollups:
    """Accumulates rollup increments for one batch, one row per key."""

    def __init__(self) -> None:
        self.rows: dict[tuple[int, str, int, str], dict[str, Any]] = {}

    def add(
        self,
        key: tuple[int, str, int, str],
        *,
        count: int,
        error: bool,
        latency_ms: float | None,
        span: Span,
    ) -> None:
        row = self.rows.get(key)
        if row is None:
            project_id, dimension, bucket_s, value = key
            row = {
                "project_id": project_id,
                "dimension": dimension,
                "width_s": ROLLUP_SECONDS,
                "bucket_s": bucket_s,
                "value": value[:500],
                "count": 0,
                "errors": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "cost_usd": 0.0,
                "duration_ms_sum": 0.0,
                **dict.fromkeys(LATENCY_COLUMNS, 0),
            }
            self.rows[key] = row
        row["count"] += count
        row["errors"] += 1 if error and count else 0
        row["input_tokens"] += span.input_tokens or 0
        row["output_tokens"] += span.output_tokens or 0
        row["cost_usd"] += span.cost_usd or 0.0
        if latency_ms is not None and count:
            row["duration_ms_sum"] += latency_ms
            row[LATENCY_COLUMNS[latency_bucket(latency_ms)]] += 1

    def add_trace(self, project_id: int, spans: list[Span]) -> None:
        root = next((s for s in spans if s.parent_span_id is None), None)
        user = _first(spans if root is None else [root, *spans], "user_id")
        tags: list[str] = []
        for span in spans:
            tags.extend(t for t in span.tags if t not in tags)
        for span in spans:
            bucket = span.start_time_ns // 1_000_000_000 // ROLLUP_SECONDS * ROLLUP_SECONDS
            error = span.status_code == "error"
            latency = span.duration_ms
            model = span.request_model or span.response_model
            if model:
                self.add(
                    (project_id, "model", bucket, model),
                    count=1,
                    error=error,
                    latency_ms=latency,
                    span=span,
                )
            is_root = span is root
            values = [("all", ""), *(("tag", t) for t in tags)]
            if user:
                values.append(("user", str(user)))
            if root is not None:
                values.append(("name", root.name))
            for dimension, value in values:
                self.add(
                    (project_id, dimension, bucket, value),
                    count=1 if is_root else 0,
                    error=error,
                    latency_ms=latency if is_root else None,
                    span=span,
                )


def rollup_rows(groups: dict[tuple[int, str], list[Span]]) -> list[dict[str, Any]]:
    """Minute rows for these spans, plus the hour rows they add up to."""
    rollups = Rollups()
    for (project_id, _trace_id), spans in groups.items():
        rollups.add_trace(project_id, spans)
    minutes = list(rollups.rows.values())
    hours: dict[tuple[int, str, int, str], dict[str, Any]] = {}
    for row in minutes:
        hour = row["bucket_s"] // 3600 * 3600
        key = (row["project_id"], row["dimension"], hour, row["value"])
        total = hours.get(key)
        if total is None:
            hours[key] = {**row, "width_s": 3600, "bucket_s": hour}
        else:
            for column in _SUMMED:
                total[column] += row[column]
    return minutes + list(hours.values())
