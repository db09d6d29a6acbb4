"""Prometheus metrics of the gateway, served at ``GET /metrics``.

Each process keeps its own registry (one per runtime, so tests and embedded apps do not
collide). :meth:`GatewayMetrics.observe_request` is on the hot path of every call, so it only
adds to plain numbers keyed by labels (the event loop is the only writer); the registry turns
them into Prometheus counters and histograms when ``/metrics`` is scraped. That costs a tenth
of updating ``prometheus_client`` metrics, each behind its own lock, per call.

Label values are bounded: ``model`` is a configured alias (requests for unknown models are
counted under ``-``) and ``deployment`` a configured deployment id.
"""

from __future__ import annotations

import hmac
from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from pilothouse.runtime import Runtime

STATE_KEY = "gateway_metrics"

#: Seconds; LLM calls range from milliseconds (cache, mock) to minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.2)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)

Labels = tuple[str, ...]


class Histogram:
    """Observations counted per bucket (``counts[i]``: values up to ``bounds[i]``; the last
    one: above every bound), and their sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, count)`` pairs as Prometheus exposes them, ``+Inf`` last."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            out.append((repr(float(bound)), running))  # as prometheus_client writes them
        out.append(("+Inf", running + self.counts[-1]))
        return out


class Labelled:
    """The histograms of one (model, deployment), made on its first answer."""

    __slots__ = ("latency", "tpot", "ttft")

    def __init__(self) -> None:
        self.latency = Histogram(LATENCY_BUCKETS)
        self.ttft = Histogram(TTFT_BUCKETS)
        self.tpot = Histogram(TPOT_BUCKETS)


class GatewayMetrics(Collector):
    """The gateway's metrics on their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        process_collector.ProcessCollector(registry=self.registry)
        platform_collector.PlatformCollector(registry=self.registry)
        gc_collector.GCCollector(registry=self.registry)
        #: (model, deployment, status code) -> requests
        self.requests: dict[tuple[str, str, int], int] = {}
        #: (model, error code) -> errors
        self.errors: dict[Labels, int] = {}
        #: (model, deployment, direction) -> tokens
        self.tokens: dict[Labels, int] = {}
        #: (model, deployment) -> USD
        self.cost: dict[Labels, float] = {}
        #: (model, hit or miss) -> lookups
        self.cache: dict[Labels, int] = {}
        self.labelled: dict[Labels, Labelled] = {}
        self.overhead = Histogram(OVERHEAD_BUCKETS)
        self.registry.register(self)

    def observe_request(
        self,
        *,
        model: str,
        deployment: str,
        status_code: int,
        latency_s: float | None = None,
        ttft_s: float | None = None,
        tpot_s: float | None = None,
        overhead_s: float | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
        error_code: str | None = None,
    ) -> None:
        """Count one finished request (cheap: called for every request)."""
        key = (model, deployment, status_code)
        self.requests[key] = self.requests.get(key, 0) + 1
        if error_code is not None:
            errors = (model, error_code)
            self.errors[errors] = self.errors.get(errors, 0) + 1
        if overhead_s is not None:
            self.overhead.observe(overhead_s)
        if status_code >= 400:
            return
        pair = (model, deployment)
        histograms = self.labelled.get(pair)
        if histograms is None:
            histograms = self.labelled[pair] = Labelled()
        if latency_s is not None:
            histograms.latency.observe(latency_s)
        if ttft_s is not None:
            histograms.ttft.observe(ttft_s)
        if tpot_s is not None:
            histograms.tpot.observe(tpot_s)
        if input_tokens:
            self._add(self.tokens, (model, deployment, "input"), input_tokens)
        if output_tokens:
            self._add(self.tokens, (model, deployment, "output"), output_tokens)
        if cost_usd:
            self.cost[pair] = self.cost.get(pair, 0.0) + cost_usd

    @staticmethod
    def _add(tally: dict[Labels, int], key: Labels, amount: int) -> None:
        tally[key] = tally.get(key, 0) + amount

    def observe_cache(self, model: str, hit: bool) -> None:
        self._add(self.cache, (model, "hit" if hit else "miss"), 1)

    def collect(self) -> Iterator[Metric]:
        """The tallies as Prometheus metric families (called by the registry on a scrape)."""
        yield _counter(
            "pilothouse_gateway_requests",
            "Gateway requests by model, deployment and HTTP status code.",
            ["model", "deployment", "status_code"],
            {(m, d, str(code)): n for (m, d, code), n in list(self.requests.items())},
        )
        yield _counter(
            "pilothouse_gateway_errors",
            "Gateway errors by model and error code.",
            ["model", "code"],
            self.errors,
        )
        pairs = list(self.labelled.items())
        for name, doc, attr in (
            (
                "pilothouse_gateway_request_duration_seconds",
                "Time from request to the end of the answer.",
                "latency",
            ),
            (
                "pilothouse_gateway_time_to_first_token_seconds",
                "Time to the first content chunk of streamed answers.",
                "ttft",
            ),
            (
                "pilothouse_gateway_time_per_output_token_seconds",
                "Time per output token after the first, of streamed answers.",
                "tpot",
            ),
        ):
            family = HistogramMetricFamily(name, doc, labels=["model", "deployment"])
            for labels, histograms in pairs:
                histogram: Histogram = getattr(histograms, attr)
                family.add_metric(list(labels), histogram.cumulative(), histogram.total)
            yield family
        overhead = HistogramMetricFamily(
            "pilothouse_gateway_overhead_seconds",
            "Time spent in the gateway itself, excluding upstream waits.",
        )
        overhead.add_metric([], self.overhead.cumulative(), self.overhead.total)
        yield overhead
        yield _counter(
            "pilothouse_gateway_tokens",
            "Tokens by model, deployment and direction (input or output).",
            ["model", "deployment", "direction"],
            self.tokens,
        )
        yield _counter(
            "pilothouse_gateway_cost_usd",
            "Cost of gateway calls in USD, by model and deployment.",
            ["model", "deployment"],
            self.cost,
        )
        yield _counter(
            "pilothouse_gateway_cache_lookups",
            "Response cache lookups by model and result (hit or miss).",
            ["model", "result"],
            self.cache,
        )

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return bytes(generate_latest(self.registry))


def _counter(
    name: str, doc: str, labels: list[str], tally: dict[Labels, Any]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for values, total in list(tally.items()):
        family.add_metric(list(values), total)
    return family


def metrics_of(runtime: Runtime) -> GatewayMetrics:
    """The runtime's metrics, created on first use."""
    found = runtime.state.get(STATE_KEY)
    if found is None:
        found = runtime.state[STATE_KEY] = GatewayMetrics()
    assert isinstance(found, GatewayMetrics)
    return found


def metrics_endpoint(runtime: Runtime) -> Any:
    """The ``GET /metrics`` handler; asks for ``metrics_token`` when one is set."""
    token = runtime.settings.metrics_token

    async def endpoint(request: Request) -> Response:
        if token:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return Response(
                    "metrics_token required\n",
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                    media_type="text/plain",
                )
        return Response(metrics_of(runtime).exposition(), media_type=CONTENT_TYPE_LATEST)

    return endpoint


__all__ = ["GatewayMetrics", "metrics_endpoint", "metrics_of"]
