"""Histograms of the rollups (latency, time to first token): bucketing, percentile estimates,
and what a trace adds to its rollup rows."""

from __future__ import annotations

import pytest

from pilothouse.store.traces import (
    LATENCY_BOUNDS_MS,
    LATENCY_BUCKETS,
    ROLLUP_COLUMNS,
    TTFT_BOUNDS_MS,
    TTFT_BUCKETS,
    TTFT_COLUMNS,
)
from pilothouse.tracing.model import Span
from pilothouse.tracing.summary import (
    group_by_trace,
    latency_bucket,
    percentile,
    percentiles,
    rollup_rows,
    trace_row,
    ttft_bucket,
    ttft_percentiles,
)


def histogram_of(samples: list[float]) -> list[int]:
    histogram = [0] * LATENCY_BUCKETS
    for ms in samples:
        histogram[latency_bucket(ms)] += 1
    return histogram


def test_buckets_hold_their_bounds():
    assert latency_bucket(0.2) == 0
    for i in range(1, LATENCY_BUCKETS - 1):
        low, high = LATENCY_BOUNDS_MS[i - 1], LATENCY_BOUNDS_MS[i]
        assert latency_bucket(low * 1.0001) == i
        assert latency_bucket(high * 0.9999) == i
    assert latency_bucket(1e12) == LATENCY_BUCKETS - 1


@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99])
def test_percentiles_are_within_one_bucket(q: float):
    samples = [float(ms) for ms in range(1, 2001)]  # 1 ms .. 2 s, uniform
    exact = samples[int(q * len(samples)) - 1]
    estimate = percentile(histogram_of(samples), q)
    assert estimate is not None
    assert exact / 1.42 <= estimate <= exact * 1.42  # a bucket is sqrt(2) wide


def test_several_percentiles_in_one_pass_match_one_at_a_time():
    histogram = histogram_of([5, 7, 7, 30, 120, 120, 121, 900, 4000, 4100])
    both = percentiles(histogram, (0.5, 0.95))
    assert both == [percentile(histogram, 0.5), percentile(histogram, 0.95)]
    assert percentiles([0] * LATENCY_BUCKETS, (0.5, 0.95)) == [None, None]


def test_ttft_buckets_hold_their_bounds_and_give_percentiles():
    assert ttft_bucket(0.5) == 0
    for i in range(1, TTFT_BUCKETS - 1):
        assert ttft_bucket(TTFT_BOUNDS_MS[i - 1] * 1.0001) == i
        assert ttft_bucket(TTFT_BOUNDS_MS[i] * 0.9999) == i
    assert ttft_bucket(1e9) == TTFT_BUCKETS - 1
    histogram = [0] * TTFT_BUCKETS
    for ms in range(100, 1100):
        histogram[ttft_bucket(ms)] += 1
    p50, p95 = ttft_percentiles(histogram, (0.5, 0.95))
    assert p50 is not None and 600 / 2 <= p50 <= 600 * 2  # a bucket is 2x wide
    assert p95 is not None and 1050 / 2 <= p95 <= 1050 * 2
    assert ttft_percentiles([0] * TTFT_BUCKETS, (0.5,)) == [None]


def test_a_trace_adds_its_blocks_and_ttfts_to_every_dimension():
    start = 1_700_000_000 * 10**9
    blocked = {"pilothouse.guardrails": {"policy": "p", "verdict": "block", "decisions": []}}
    allowed = {"pilothouse.guardrails": {"policy": "p", "decisions": []}}

    def span(span_id: str, parent: str | None, **extra: object) -> Span:
        return Span(1, "a" * 32, span_id, "agent", start, start + 10**9, parent, **extra)  # type: ignore[arg-type]

    spans = [
        span("1" * 16, None, user_id="ann"),
        span("2" * 16, "1" * 16, request_model="m", ttft_ms=300.0, attributes=allowed),
        span("3" * 16, "1" * 16, request_model="m", ttft_ms=0.5),
        span("4" * 16, "1" * 16, request_model="m", attributes=blocked),
        span("5" * 16, "1" * 16, attributes={"pilothouse.guardrails": "block"}),  # not ours
    ]
    rows = {
        (r[1], r[2]): dict(zip(ROLLUP_COLUMNS, r, strict=True))
        for r in rollup_rows(group_by_trace(spans))
    }
    for dimension in ("all", "user", "name", "model"):
        for width in (60, 3600):
            row = rows[(dimension, width)]
            assert row["blocked"] == 1
            ttft = [row[c] for c in TTFT_COLUMNS]
            assert sum(ttft) == 2 and ttft[0] == 1 and ttft[ttft_bucket(300.0)] == 1
    assert rows[("all", 60)]["count"] == 1 and rows[("model", 60)]["count"] == 3


@pytest.mark.parametrize("parent", [None, "9" * 16])
def test_a_one_span_trace_row_is_the_general_one(parent: str | None):
    # trace_row takes a short road for one span: the same row as the general merge gives
    # (checked by adding a second span that contributes nothing to any column compared).
    start = 1_700_000_000 * 10**9
    span = Span(
        1, "a" * 32, "1" * 16, "chat m", start, start + 5 * 10**6, parent,
        request_model="m", provider="openai", input_tokens=3, output_tokens=4, cost_usd=0.5,
        tags=["x", "y", "x"], user_id="ann", session_id="s", input=[{"role": "user"}],
        output="ok", service_name="svc", environment="prod", prompt_name="p", prompt_version=2,
    )  # fmt: skip
    quiet = Span(1, "a" * 32, "2" * 16, "late", start + 1, start + 2, "1" * 16)
    one = trace_row(1, "a" * 32, [span])
    merged = trace_row(1, "a" * 32, [span, quiet])
    merged["span_count"] = 1
    assert one == merged
    assert one["tags"] == ["x", "y"] and one["has_root"] is (parent is None)
    assert one["input"] == '[{"role":"user"}]' and one["model"] == "m"
