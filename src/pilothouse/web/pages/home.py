"""The project home: requests, errors, latency, time to first token, tokens, cost and
guardrail blocks over a chosen period.

Everything comes from the trace rollups (:func:`pilothouse.store.traces.rollup_series`),
never from raw spans, so the page costs the same with a thousand traces or a billion.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response

from pilothouse.store import traces as store
from pilothouse.tracing.summary import percentiles, ttft_percentiles
from pilothouse.web import formats
from pilothouse.web.ui import Page

#: range name -> (seconds shown, bucket width in seconds, label format)
RANGES: dict[str, tuple[int, int, str]] = {
    "1h": (3600, 60, "%H:%M"),
    "24h": (86400, 3600, "%H:%M"),
    "7d": (7 * 86400, 6 * 3600, "%b %d %H:%M"),
    "30d": (30 * 86400, 86400, "%b %d"),
}
SUMMED = store.ROLLUP_SUMS
TOP = 6


def _totals(rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Sums of :func:`~pilothouse.store.traces.rollup_series` rows ``(bucket, value, *sums,
    latency histogram, TTFT histogram)``, with error rate and latency and TTFT percentiles."""
    out: dict[str, Any] = {name: 0 for name in SUMMED}
    latency = [0] * store.LATENCY_BUCKETS
    ttft = [0] * store.TTFT_BUCKETS
    for row in rows:
        for i, name in enumerate(SUMMED):
            out[name] += row[2 + i] or 0
        for i, count in enumerate(row[2 + len(SUMMED)]):
            latency[i] += count
        for i, count in enumerate(row[3 + len(SUMMED)]):
            ttft[i] += count
    out["error_rate"] = out["errors"] / out["count"] if out["count"] else None
    out["p50_ms"], out["p95_ms"] = percentiles(latency, (0.5, 0.95))
    out["ttft_count"] = sum(ttft)
    out["ttft_p50_ms"], out["ttft_p95_ms"] = ttft_percentiles(ttft, (0.5, 0.95))
    out["tokens"] = out["input_tokens"] + out["output_tokens"]
    return out


def _top(rows: Sequence[Sequence[Any]]) -> list[tuple[str, float]]:
    """Groups (models, trace names) by cost, largest first."""
    cost: dict[str, float] = {}
    at = 2 + SUMMED.index("cost_usd")
    for row in rows:
        cost[row[1]] = cost.get(row[1], 0.0) + float(row[at] or 0)
    ranked = sorted(cost.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(name or "(none)", value) for name, value in ranked[:TOP]]


def home(page: Page) -> Response:
    page.require("read")
    chosen = page.query("range", "24h")
    chosen = chosen if chosen in RANGES else "24h"
    span_s, step, label = RANGES[chosen]
    end_s = int(time.time()) // step * step + step
    start_s = end_s - span_s
    with page.runtime.db.read() as conn:
        rows = store.rollup_series(conn, page.project_id, "all", start_s, end_s, step)
        models = store.rollup_series(conn, page.project_id, "model", start_s, end_s, step)
        # Trace names, not users: a project has a few workflows but may have millions of users.
        names = store.rollup_series(conn, page.project_id, "name", start_s, end_s, step)
    by_bucket = {int(r[0]): _totals([r]) for r in rows}
    buckets = list(range(start_s, end_s, step))
    labels = [datetime.fromtimestamp(b, UTC).strftime(label) for b in buckets]

    def series(key: str) -> list[tuple[str, float | None]]:
        return [
            (text, by_bucket[b][key] if b in by_bucket else None)
            for text, b in zip(labels, buckets, strict=True)
        ]

    return page.render(
        "home.html",
        ranges=RANGES,
        chosen=chosen,
        totals=_totals(rows),
        series=series,
        top_models=_top(models),
        top_names=_top(names),
        fmt=formats,
    )
