"""Prometheus metrics: observations, GET /metrics, and the gateway feeding them."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pilothouse.gateway.metrics import GatewayMetrics
from tests.conftest import ADMIN_KEY
from tests.gateway.conftest import GatewayFactory

MESSAGES: Any = [{"role": "user", "content": "hello"}]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def test_observe_request_counts_everything_once():
    metrics = GatewayMetrics()
    for _ in range(2):
        metrics.observe_request(
            model="gpt",
            deployment="gpt#0",
            status_code=200,
            latency_s=0.2,
            ttft_s=0.05,
            tpot_s=0.01,
            overhead_s=0.0004,
            input_tokens=10,
            output_tokens=5,
            cost_usd=0.001,
        )
    metrics.observe_request(
        model="gpt", deployment="-", status_code=429, latency_s=0.001, error_code="rate_limited"
    )
    metrics.observe_cache("gpt", hit=True)
    text = metrics.exposition().decode()
    ok = {"model": "gpt", "deployment": "gpt#0"}
    assert value(text, "pilothouse_gateway_requests_total", status_code="200", **ok) == 2
    refused = {"model": "gpt", "deployment": "-"}
    assert value(text, "pilothouse_gateway_requests_total", status_code="429", **refused) == 1
    assert value(text, "pilothouse_gateway_errors_total", model="gpt", code="rate_limited") == 1
    assert value(text, "pilothouse_gateway_tokens_total", direction="input", **ok) == 20
    assert value(text, "pilothouse_gateway_tokens_total", direction="output", **ok) == 10
    assert value(text, "pilothouse_gateway_cost_usd_total", **ok) == pytest.approx(0.002)
    assert value(text, "pilothouse_gateway_request_duration_seconds_count", **ok) == 2
    assert value(text, "pilothouse_gateway_time_to_first_token_seconds_count", **ok) == 2
    assert value(text, "pilothouse_gateway_time_per_output_token_seconds_sum", **ok) == 0.02
    assert value(text, "pilothouse_gateway_overhead_seconds_count") == 2
    assert value(text, "pilothouse_gateway_cache_lookups_total", model="gpt", result="hit") == 1
    # Failed requests add no latency/token samples for their model.
    assert (
        value(
            text, "pilothouse_gateway_request_duration_seconds_count", model="gpt", deployment="-"
        )
        == 0
    )
    assert "process_resident_memory_bytes" in text


def test_metrics_endpoint_reflects_gateway_traffic(make_gateway: GatewayFactory) -> None:
    gw = make_gateway()
    client = gw.client()
    client.chat.completions.create(model="mock/echo", messages=MESSAGES)
    list(client.chat.completions.create(model="mock/echo", messages=MESSAGES, stream=True))
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    with pytest.raises(openai.AuthenticationError):
        gw.client("ph-wrong").chat.completions.create(model="mock/echo", messages=MESSAGES)
    response = httpx.get(gw.url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    echo = {"model": "mock/echo", "deployment": "mock/echo#0"}
    assert value(text, "pilothouse_gateway_requests_total", status_code="200", **echo) == 2
    assert value(text, "pilothouse_gateway_time_to_first_token_seconds_count", **echo) == 1
    assert value(text, "pilothouse_gateway_tokens_total", direction="output", **echo) > 0
    # Unknown models are not labels (bounded cardinality).
    assert "no-such-model" not in text
    assert value(text, "pilothouse_gateway_errors_total", model="-", code="model_not_found") == 1


def test_metrics_token(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(metrics_token="s3cret")
    assert httpx.get(gw.url + "/metrics").status_code == 401
    wrong = httpx.get(gw.url + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert wrong.status_code == 401
    right = httpx.get(gw.url + "/metrics", headers={"Authorization": "Bearer s3cret"})
    assert right.status_code == 200 and "pilothouse_gateway" in right.text
