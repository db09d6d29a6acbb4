# ruff: noqa: E501
# mypy: disable-error-code="arg-type, call-overload, union-attr, dict-item, index, attr-defined, unused-ignore, assignment"
"""Router behaviour against a fake upstream on a real socket: retries, fallbacks, breaker,
timeouts, weighted balancing, and no retry once a stream has started."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from pilothouse.errors import NotFound, Unavailable, UpstreamError, UpstreamTimeout
from pilothouse.gateway.call import Call
from pilothouse.gateway.config import ConfigSource, parse
from pilothouse.gateway.pool import PooledUpstream as HttpUpstream
from pilothouse.gateway.providers.mock import MockProvider
from pilothouse.gateway.providers.openai import OpenAIProvider
from pilothouse.gateway.router import Breaker, Router, weighted_order
from tests.gateway.conftest import Upstream


def deployment(url: str, model: str = "m", **extra: Any) -> dict[str, Any]:
    return {"provider": "openai", "model": model, "base_url": url + "/v1", **extra}


class Harness:
    def __init__(self, models: dict[str, Any], router: dict[str, Any] | None = None) -> None:
        self.http = HttpUpstream()
        providers = {"openai": OpenAIProvider(self.http), "mock": MockProvider(self.http)}
        source = ConfigSource(None)
        doc: dict[str, Any] = {"models": models, "router": {"backoff": 0.01, **(router or {})}}
        source.current = parse(doc, providers=set(providers))
        self.delays: list[float] = []
        self.router = Router(source, providers, rng=random.Random(7), sleep=self.sleep)

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)

    def call(self, model: str, stream: bool = False) -> Call:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        if stream:
            body["stream"] = True
        return Call(
            runtime=cast(Any, None),
            api_key=cast(Any, None),
            operation="chat",
            body=body,
            request_id="req_test",
            headers={},
            stream=stream,
            model=model,
        )


async def test_retries_a_failing_deployment_with_jittered_backoff(upstream: Upstream) -> None:
    upstream.fake.failures = [(503, "cold start"), (502, "still warming")]
    h = Harness({"m": {"deployments": [deployment(upstream.url)]}})
    call = h.call("m")
    result = await h.router.call(call, "chat")
    assert result["choices"][0]["message"]["content"] == "fake: hi"
    assert call.attempts == 3
    assert len(h.delays) == 2
    assert 0 <= h.delays[0] <= 0.01 and 0 <= h.delays[1] <= 0.02
    await h.http.aclose()


async def test_gives_up_after_retries_with_the_upstream_message(upstream: Upstream) -> None:
    upstream.fake.failures = [(500, "boom")] * 3
    h = Harness({"m": {"deployments": [deployment(upstream.url)]}}, {"retries": 2})
    call = h.call("m")
    with pytest.raises(UpstreamError, match="boom") as caught:
        await h.router.call(call, "chat")
    assert caught.value.status == 502
    assert call.attempts == 3
    await h.http.aclose()


async def test_client_errors_are_not_retried(upstream: Upstream) -> None:
    upstream.fake.failures = [(400, "bad temperature")]
    h = Harness({"m": {"deployments": [deployment(upstream.url)]}})
    call = h.call("m")
    with pytest.raises(Exception, match="bad temperature") as caught:
        await h.router.call(call, "chat")
    assert getattr(caught.value, "status", None) == 400
    assert call.attempts == 1
    await h.http.aclose()


async def test_falls_back_to_another_deployment_then_another_model(upstream: Upstream) -> None:
    upstream.fake.failures = [(503, "down")] * 2
    h = Harness(
        {
            "primary": {"deployments": [deployment(upstream.url, "a")], "fallbacks": ["backup"]},
            "backup": {"deployments": [deployment(upstream.url, "b")]},
        },
        {"retries": 1},
    )
    call = h.call("primary")
    result = await h.router.call(call, "chat")
    assert result["model"] == "b"
    assert [s.body["model"] for s in upstream.fake.seen] == ["a", "a", "b"]
    assert call.deployment is not None and call.deployment.id == "backup#0"
    await h.http.aclose()


async def test_context_window_errors_use_context_window_fallbacks(upstream: Upstream) -> None:
    upstream.fake.failures = [(400, "This model's maximum context length is 8192 tokens")]
    h = Harness(
        {
            "small": {
                "deployments": [deployment(upstream.url, "small")],
                "context_window_fallbacks": ["large"],
            },
            "large": {"deployments": [deployment(upstream.url, "large")]},
        }
    )
    call = h.call("small")
    result = await h.router.call(call, "chat")
    assert result["model"] == "large"
    assert call.attempts == 2  # no retry of the same model: the prompt would not fit again
    await h.http.aclose()


async def test_circuit_breaker_ejects_a_failing_deployment(upstream: Upstream) -> None:
    upstream.fake.failures = [(503, "down")] * 2
    h = Harness(
        {"m": {"deployments": [deployment(upstream.url)]}},
        {"retries": 0, "breaker_failures": 2, "breaker_cooldown": 60},
    )
    for _ in range(2):
        with pytest.raises(UpstreamError):
            await h.router.call(h.call("m"), "chat")
    seen = len(upstream.fake.seen)
    with pytest.raises(Unavailable) as caught:
        await h.router.call(h.call("m"), "chat")
    assert len(upstream.fake.seen) == seen  # the upstream was not called while open
    assert caught.value.retry_after is not None and 50 < caught.value.retry_after <= 60
    await h.http.aclose()


async def test_breaker_skips_the_open_deployment_for_the_healthy_one(upstream: Upstream) -> None:
    h = Harness(
        {
            "m": {
                "deployments": [
                    deployment("http://127.0.0.1:9", "dead", weight=100),
                    deployment(upstream.url, "alive", weight=1),
                ]
            }
        },
        {"retries": 0, "breaker_failures": 1},
    )
    first = h.call("m")
    await h.router.call(first, "chat")
    assert first.attempts >= 1
    for _ in range(5):
        call = h.call("m")
        result = await h.router.call(call, "chat")
        assert result["model"] == "alive" and call.attempts == 1
    await h.http.aclose()


def test_breaker_half_opens_after_cooldown_and_reopens_on_failure() -> None:
    from pilothouse.gateway.config import RouterPolicy

    policy = RouterPolicy(breaker_failures=2, breaker_cooldown=10)
    breaker = Breaker()
    breaker.failure(0.0, policy)
    assert breaker.allows(0.0)
    breaker.failure(1.0, policy)
    assert not breaker.allows(5.0)
    assert breaker.allows(11.0)  # half-open
    breaker.failure(11.0, policy)  # one failure is enough to re-open
    assert not breaker.allows(12.0)
    breaker.success()
    breaker.failure(30.0, policy)
    assert breaker.allows(30.0)


async def test_first_byte_timeout_is_retried_then_reported_as_504(upstream: Upstream) -> None:
    upstream.fake.failures = [("hang", 2.0), ("hang", 2.0)]
    h = Harness(
        {"m": {"deployments": [deployment(upstream.url, timeouts={"first_byte": 0.2})]}},
        {"retries": 1},
    )
    call = h.call("m")
    with pytest.raises(UpstreamTimeout, match=r"no answer within 0\.2s"):
        await h.router.call(call, "chat")
    assert call.attempts == 2
    await h.http.aclose()


async def test_total_timeout_cuts_a_slow_answer(upstream: Upstream) -> None:
    upstream.fake.delay = 1.0
    h = Harness(
        {"m": {"deployments": [deployment(upstream.url, timeouts={"total": 0.2})]}},
        {"retries": 0},
    )
    with pytest.raises(UpstreamTimeout, match=r"0\.2s"):
        await h.router.call(h.call("m"), "chat")
    await h.http.aclose()


async def test_connection_refused_falls_back(upstream: Upstream) -> None:
    h = Harness(
        {
            "m": {
                "deployments": [deployment("http://127.0.0.1:9", "dead")],
                "fallbacks": ["ok"],
            },
            "ok": {"deployments": [deployment(upstream.url, "ok")]},
        },
        {"retries": 0},
    )
    result = await h.router.call(h.call("m"), "chat")
    assert result["model"] == "ok"
    await h.http.aclose()


async def test_stream_failing_before_the_first_chunk_is_retried(upstream: Upstream) -> None:
    upstream.fake.failures = [(503, "warming")]
    h = Harness({"m": {"deployments": [deployment(upstream.url)]}})
    call = h.call("m", stream=True)
    opened = await h.router.open_stream(call, "chat")
    chunks = [opened.first] + [c async for c in opened.chunks]
    assert call.attempts == 2
    assert "".join(
        c["choices"][0]["delta"].get("content", "") for c in chunks if c and c["choices"]
    )
    await h.http.aclose()


async def test_a_stream_is_never_retried_after_it_started() -> None:
    from pilothouse.gateway.providers.base import AttemptFailed, Provider

    class Flaky(Provider):
        name = "flaky"
        opened = 0

        async def chat_stream(self, deployment, body) -> AsyncIterator[dict[str, Any]]:  # type: ignore[override]
            Flaky.opened += 1
            yield {"choices": [{"index": 0, "delta": {"content": "a"}}]}
            raise AttemptFailed(UpstreamError("connection reset mid-stream"))

    http = HttpUpstream()
    source = ConfigSource(None)
    source.current = parse(
        {"models": {"m": {"deployments": [{"provider": "flaky", "model": "x"}]}}},
        providers={"flaky"},
    )
    router = Router(source, {"flaky": Flaky(http)})
    call = Harness({"x": {"deployments": [{"provider": "mock", "model": "echo"}]}}).call("m", True)
    opened = await router.open_stream(call, "chat")
    with pytest.raises(AttemptFailed):
        async for _ in opened.chunks:
            pass
    assert Flaky.opened == 1 and call.attempts == 1


def test_unknown_model_is_a_404_naming_the_field() -> None:
    h = Harness({"m": {"deployments": [{"provider": "mock", "model": "echo"}]}})
    with pytest.raises(NotFound) as caught:
        h.router.route("other")
    assert caught.value.param == "model" and caught.value.code == "model_not_found"


def test_weighted_order_follows_weights() -> None:
    source = parse(
        {
            "models": {
                "m": {
                    "deployments": [
                        {"provider": "mock", "model": "a", "weight": 3},
                        {"provider": "mock", "model": "b", "weight": 1},
                        {"provider": "mock", "model": "c", "weight": 0},
                    ]
                }
            }
        }
    )
    rng = random.Random(1)
    firsts = [weighted_order(source.models["m"].deployments, rng)[0].model for _ in range(4000)]
    share = firsts.count("a") / len(firsts)
    assert 0.7 < share < 0.8  # 3:1 weights -> 75 %
    assert "c" not in firsts


async def test_the_http_seam_takes_an_in_process_upstream() -> None:
    import httpx

    from pilothouse.gateway.http import HttpxUpstream
    from tests.gateway.fakes import FakeUpstream

    fake = FakeUpstream(failures=[(503, "warming")])
    http = HttpxUpstream(httpx.ASGITransport(app=fake))
    source = ConfigSource(None)
    source.current = parse(
        {"models": {"m": {"deployments": [deployment("http://upstream.test", "up")]}}},
        providers={"openai"},
    )

    async def no_wait(seconds: float) -> None:
        pass

    router = Router(source, {"openai": OpenAIProvider(http)}, sleep=no_wait)
    call = Harness({"x": {"deployments": [{"provider": "mock", "model": "echo"}]}}).call("m")
    result = await router.call(call, "chat")
    assert result["model"] == "up" and call.attempts == 2
    await http.aclose()
