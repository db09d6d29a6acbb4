"""Prometheus metrics of the gateway, served at ``GET /metrics``.

Each process keeps its own registry (one per runtime, so tests and embedded apps do not
collide). :meth:`GatewayMetrics.observe_request` is on the hot path: the labelled children of
each (model, deployment) pair are looked up once and kept, so an observation is a few
additions under prometheus_client's locks.

Label values are bounded: ``model`` is a configured alias (requests for unknown models are
counted under ``-``) and ``deployment`` a configured deployment id.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)
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


@dataclass
class _Children:
    """Pre-labelled metrics of one (model, deployment)."""

    latency: Any
    ttft: Any
    tpot: Any
    input_tokens: Any
    output_tokens: Any
    cost: Any


class GatewayMetrics:
    """The gateway's metrics on their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        process_collector.ProcessCollector(registry=self.registry)
        platform_collector.PlatformCollector(registry=self.registry)
        gc_collector.GCCollector(registry=self.registry)
        r = self.registry
        self.requests = Counter(
            "pilothouse_gateway_requests",
            "Gateway requests by model, deployment and HTTP status code.",
            ["model", "deployment", "status_code"],
            registry=r,
        )
        self.errors = Counter(
            "pilothouse_gateway_errors",
            "Gateway errors by model and error code.",
            ["model", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "pilothouse_gateway_request_duration_seconds",
            "Time from request to the end of the answer.",
            ["model", "deployment"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "pilothouse_gateway_time_to_first_token_seconds",
            "Time to the first content chunk of streamed answers.",
            ["model", "deployment"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "pilothouse_gateway_time_per_output_token_seconds",
            "Time per output token after the first, of streamed answers.",
            ["model", "deployment"],
            buckets=TPOT_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "pilothouse_gateway_overhead_seconds",
            "Time spent in the gateway itself, excluding upstream waits.",
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "pilothouse_gateway_tokens",
            "Tokens by model, deployment and direction (input or output).",
            ["model", "deployment", "direction"],
            registry=r,
        )
        self.cost = Counter(
            "pilothouse_gateway_cost_usd",
            "Cost of gateway calls in USD, by model and deployment.",
            ["model", "deployment"],
            registry=r,
        )
        self.cache = Counter(
            "pilothouse_gateway_cache_lookups",
            "Response cache lookups by model and result (hit or miss).",
            ["model", "result"],
            registry=r,
        )
        self._children: dict[tuple[str, str], _Children] = {}
        self._requests: dict[tuple[str, str, int], Any] = {}

    def _labelled(self, model: str, deployment: str) -> _Children:
        key = (model, deployment)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = _Children(
                latency=self.latency.labels(model, deployment),
                ttft=self.ttft.labels(model, deployment),
                tpot=self.tpot.labels(model, deployment),
                input_tokens=self.tokens.labels(model, deployment, "input"),
                output_tokens=self.tokens.labels(model, deployment, "output"),
                cost=self.cost.labels(model, deployment),
            )
        return found

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
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = self.requests.labels(model, deployment, status_code)
        counter.inc()
        if error_code is not None:
            self.errors.labels(model, error_code).inc()
        if overhead_s is not None:
            self.overhead.observe(overhead_s)
        if status_code >= 400:
            return
        children = self._labelled(model, deployment)
        if latency_s is not None:
            children.latency.observe(latency_s)
        if ttft_s is not None:
            children.ttft.observe(ttft_s)
        if tpot_s is not None:
            children.tpot.observe(tpot_s)
        if input_tokens:
            children.input_tokens.inc(input_tokens)
        if output_tokens:
            children.output_tokens.inc(output_tokens)
        if cost_usd:
            children.cost.inc(cost_usd)

    def observe_cache(self, model: str, hit: bool) -> None:
        self.cache.labels(model, "hit" if hit else "miss").inc()

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return bytes(generate_latest(self.registry))


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
