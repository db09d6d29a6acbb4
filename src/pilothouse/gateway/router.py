"""Choose a deployment for each call: weighted balancing, retries, fallbacks, circuit breaker.

For one model alias the router orders the deployments by weighted random choice, leaving out
those whose circuit is open. Each deployment gets ``1 + retries`` attempts on retryable
failures (429, 5xx, timeouts, connection errors) with exponential backoff and full jitter, then
the next deployment is tried. When every deployment failed, the model's ``fallbacks`` are tried
in order (``context_window_fallbacks`` / ``content_policy_fallbacks`` for those failures).
A stream is committed once its first chunk arrived: nothing was sent to the client before, so
every earlier failure can still be retried, and nothing is retried after.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from pilothouse.errors import NotFound, Unavailable
from pilothouse.gateway.call import Call
from pilothouse.gateway.config import ConfigSource, Deployment, ModelRoute, RouterPolicy
from pilothouse.gateway.providers.base import (
    CONTENT_POLICY,
    CONTEXT_WINDOW,
    FATAL,
    AttemptFailed,
    Provider,
)

T = TypeVar("T")


class Breaker:
    """A deployment's circuit: opens after consecutive failures, half-opens after the cool-down.

    Half-open lets requests through again; the first failure re-opens it at once, the first
    success closes it.
    """

    __slots__ = ("failures", "last_error", "last_error_at", "open_until", "streak", "tripped")

    def __init__(self) -> None:
        self.failures = 0  # towards the next trip
        self.open_until = 0.0
        self.tripped = False
        self.streak = 0  # consecutive failures, for the state API
        self.last_error: str | None = None
        self.last_error_at: float | None = None  # wall-clock time of the last failure

    def allows(self, now: float) -> bool:
        return now >= self.open_until

    def success(self) -> None:
        self.failures = 0
        self.tripped = False
        self.streak = 0

    def failure(self, now: float, policy: RouterPolicy, error: str | None = None) -> None:
        self.failures += 1
        self.streak += 1
        if error is not None:
            self.last_error = error
            self.last_error_at = time.time()
        if self.tripped or self.failures >= policy.breaker_failures:
            self.tripped = True
            self.failures = 0
            self.open_until = now + policy.breaker_cooldown

    def state(self, now: float) -> str:
        """``closed``, ``open`` (left out until ``open_until``) or ``half-open`` (on trial)."""
        if not self.tripped:
            return "closed"
        return "open" if now < self.open_until else "half-open"


@dataclass(slots=True)
class OpenedStream:
    """A stream whose first chunk arrived; the rest comes from ``chunks``."""

    first: dict[str, Any] | None
    chunks: AsyncIterator[dict[str, Any]]

    async def aclose(self) -> None:
        close = getattr(self.chunks, "aclose", None)
        if close is not None:
            await close()


def weighted_order(deployments: tuple[Deployment, ...], rng: random.Random) -> list[Deployment]:
    """A random order where heavier deployments tend to come first (Efraimidis-Spirakis)."""
    if len(deployments) == 1:
        return list(deployments)
    keyed = [(rng.random() ** (1.0 / d.weight), d) for d in deployments if d.weight > 0]
    keyed.sort(key=lambda pair: pair[0], reverse=True)
    return [d for _, d in keyed]


class Router:
    """Runs a call against the deployments of its model, with the policy of the config."""

    def __init__(
        self,
        source: ConfigSource,
        providers: dict[str, Provider],
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.source = source
        self.providers = providers
        self.breakers: dict[str, Breaker] = {}
        self.rng = rng or random.Random()
        self.sleep = sleep

    def route(self, name: str) -> ModelRoute:
        """The model alias, or 404 ``model_not_found`` naming the ``model`` field."""
        route = self.source.get().models.get(name)
        if route is None:
            raise NotFound(
                f"the model {name!r} does not exist or is not served by this gateway",
                code="model_not_found",
                param="model",
            )
        return route

    def breaker(self, deployment: Deployment) -> Breaker:
        found = self.breakers.get(deployment.id)
        if found is None:
            found = self.breakers[deployment.id] = Breaker()
        return found

    def call(
        self, call: Call, operation: str, route: ModelRoute | None = None
    ) -> Coroutine[Any, Any, dict[str, Any]]:
        """A non-streaming call: ``operation`` is chat, embeddings or completions; ``route``:
        the call's model as :meth:`route` found it (looked up again when not given)."""

        def attempt(provider: Provider, deployment: Deployment) -> Awaitable[dict[str, Any]]:
            # The provider's own awaitable: no coroutine of ours around it.
            method: Callable[..., Awaitable[dict[str, Any]]] = getattr(provider, operation)
            return method(deployment, call.body)

        return self._run(call, attempt, route)

    async def open_stream(self, call: Call, operation: str) -> OpenedStream:
        """A streaming call, returned once the first chunk arrived."""

        async def attempt(provider: Provider, deployment: Deployment) -> OpenedStream:
            method = getattr(provider, operation + "_stream")
            chunks: AsyncIterator[dict[str, Any]] = method(deployment, call.body).__aiter__()
            try:
                first = await chunks.__anext__()
            except StopAsyncIteration:
                first = None
            except BaseException:
                close = getattr(chunks, "aclose", None)
                if close is not None:
                    await close()
                raise
            return OpenedStream(first, chunks)

        return await self._run(call, attempt)

    async def _run(
        self,
        call: Call,
        attempt: Callable[[Provider, Deployment], Awaitable[T]],
        route: ModelRoute | None = None,
    ) -> T:
        config = self.source.get()
        if route is None:
            route = self.route(call.model)
        tried: set[str] = set()
        queue = [route]
        last: AttemptFailed | None = None
        while queue:
            route = queue.pop(0)
            if route.name in tried:
                continue
            tried.add(route.name)
            try:
                return await self._try_route(call, route, config.router, attempt)
            except AttemptFailed as failed:
                last = failed
                if failed.kind == FATAL:
                    raise failed.error from None
                names = {
                    CONTEXT_WINDOW: route.context_window_fallbacks,
                    CONTENT_POLICY: route.content_policy_fallbacks,
                }.get(failed.kind, route.fallbacks)
                queue = [config.models[n] for n in names if n in config.models] + queue
        assert last is not None
        raise last.error from None

    async def _try_route(
        self,
        call: Call,
        route: ModelRoute,
        policy: RouterPolicy,
        attempt: Callable[[Provider, Deployment], Awaitable[T]],
    ) -> T:
        now = time.monotonic()
        healthy = [d for d in route.deployments if self.breaker(d).allows(now)]
        if not healthy:
            wait = min(self.breaker(d).open_until for d in route.deployments) - now
            raise AttemptFailed(
                Unavailable(
                    f"every deployment of {route.name!r} is failing; retry later",
                    code="deployments_unavailable",
                    retry_after=wait,
                )
            )
        last: AttemptFailed | None = None
        for deployment in weighted_order(tuple(healthy), self.rng):
            provider = self.providers[deployment.provider]
            breaker = self.breaker(deployment)
            for retry in range(policy.retries + 1):
                if retry:
                    delay = min(policy.max_backoff, policy.backoff * 2 ** (retry - 1))
                    await self.sleep(delay * self.rng.random())
                    if not breaker.allows(time.monotonic()):
                        break
                call.attempts += 1
                call.deployment = deployment
                started = time.perf_counter()
                try:
                    result = await attempt(provider, deployment)
                except AttemptFailed as failed:
                    call.upstream_s += time.perf_counter() - started
                    last = failed
                    if not failed.retryable:
                        raise
                    breaker.failure(time.monotonic(), policy, failed.error.detail)
                    continue
                call.upstream_s += time.perf_counter() - started
                breaker.success()
                return result
        assert last is not None
        raise last
