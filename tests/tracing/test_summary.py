"""Latency histograms of the rollups: bucketing and percentile estimates."""

from __future__ import annotations

import pytest

from pilothouse.store.traces import LATENCY_BOUNDS_MS, LATENCY_BUCKETS
from pilothouse.tracing.summary import latency_bucket, percentile, percentiles


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
