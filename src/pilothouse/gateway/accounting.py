"""What the gateway does around each model call: limits, budgets, cache, cost, spend, metrics.

:class:`Accounting` is the one object the ``/v1`` app calls: :meth:`~Accounting.admit` before
the call (rate limits and budgets of the key and its project), :meth:`~Accounting.cached` and
:meth:`~Accounting.store` around it (response cache, when the request opts in), and
:meth:`~Accounting.settle` after it (real tokens, cost, spend, metrics; frees the concurrency
slot). Nothing here writes to the database per request.

Caching is opt-in: per key (``limits.cache: true``, ``limits.cache_ttl``), per request
(header ``x-pilothouse-cache: on|off|<ttl seconds>``) or per model alias
(``gateway_cache_models``, glob patterns).
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pilothouse.errors import PilothouseError, RateLimited
from pilothouse.gateway import cost as costs
from pilothouse.gateway.cache import (
    MemoryCache,
    ResponseCache,
    cache_key,
    make_cache,
    replay_as_chunks,
)
from pilothouse.gateway.limits import (
    Admission,
    Limiter,
    LimitPolicy,
    MemoryLimiter,
    make_limiter,
)
from pilothouse.gateway.metrics import GatewayMetrics, metrics_of
from pilothouse.gateway.spend import SpendLedger
from pilothouse.store import identity as identity_store

if TYPE_CHECKING:
    from pilothouse.gateway.call import Call
    from pilothouse.runtime import Runtime

log = logging.getLogger(__name__)

#: Operations whose answers may be cached (embeddings included: they are deterministic).
CACHEABLE = frozenset({"chat", "completions", "embeddings"})
#: Seconds between purges of expired rows of the database cache.
CACHE_PURGE_SECONDS = 3600.0
#: Seconds between two warnings about the same failing backend.
WARN_EVERY = 10.0
#: Characters per token when estimating a request's size before the upstream counts it.
CHARS_PER_TOKEN = 4


def estimate_tokens(body: Mapping[str, Any], body_bytes: int) -> int:
    """Tokens a request may use: its size in tokens plus the output it asks for at most."""
    output = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    if not isinstance(output, int) or isinstance(output, bool):
        output = 0
    n = body.get("n")
    choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
    return body_bytes // CHARS_PER_TOKEN + output * choices


def cache_ttl_of(value: str, default: float) -> float | None:
    """The TTL a request's ``x-pilothouse-cache`` header asks for (None: no caching); a
    request may shorten the configured TTL, not extend it."""
    text = value.strip().lower()
    if text in ("", "0", "off", "false", "no", "no-cache", "no-store"):
        return None
    if text in ("on", "true", "yes", "1"):
        return default
    try:
        seconds = float(text)
    except ValueError:
        return default
    return min(seconds, default) if seconds > 0 else None


class Accounting:
    """Limits, budgets, cache, cost, spend and metrics of one gateway process."""

    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.ledger = SpendLedger(runtime.db, flush_seconds=settings.gateway_spend_flush_seconds)
        self.limiter: Limiter = make_limiter(settings, self.ledger)
        self.cache: ResponseCache = make_cache(settings, runtime.db)
        self.cache_ttl = settings.gateway_cache_ttl
        self.cache_models = [
            p.strip() for p in settings.gateway_cache_models.split(",") if p.strip()
        ]
        self.metrics: GatewayMetrics = metrics_of(runtime)
        self._key_policies: dict[int, tuple[Any, LimitPolicy]] = {}
        #: key id -> (its limits, its project's policy, the subjects its calls are checked on)
        self._checks: dict[int, tuple[Any, LimitPolicy, tuple[tuple[str, LimitPolicy], ...]]] = {}
        self._project_policies: dict[int, tuple[float, LimitPolicy]] = {}
        self._project_ttl = settings.key_cache_ttl
        self._refreshing: set[int] = set()
        self._warned: dict[str, float] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._purge: asyncio.Task[None] | None = None

    def _warn(self, kind: str, message: str) -> None:
        """Log an outage once per :data:`WARN_EVERY` seconds, not once per request."""
        now = time.monotonic()
        if now - self._warned.get(kind, -WARN_EVERY) >= WARN_EVERY:
            self._warned[kind] = now
            log.warning(message, exc_info=True)

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Load this period's spend (budgets survive restarts) and start the flush task."""
        try:
            await asyncio.to_thread(self.ledger.load)
        except Exception:
            log.warning("could not load gateway spend; budgets start from zero", exc_info=True)
        self.ledger.start()
        if hasattr(self.cache, "purge"):
            self._purge = asyncio.get_running_loop().create_task(self._purge_cache())

    async def stop(self) -> None:
        """Write pending spend and close connections."""
        if self._purge is not None:
            self._purge.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        try:
            await self.ledger.stop()
        except Exception:
            log.exception("final gateway spend flush failed")
        for resource in (self.limiter, self.cache):
            close = getattr(resource, "aclose", None)
            if close is not None:
                await close()

    async def _purge_cache(self) -> None:
        purge = getattr(self.cache, "purge")  # noqa: B009 - only the database cache has one
        while True:
            try:
                await asyncio.to_thread(purge)
            except Exception:
                log.warning("gateway cache purge failed", exc_info=True)
            await asyncio.sleep(CACHE_PURGE_SECONDS)

    # --- limits ---------------------------------------------------------------------------

    def key_policy(self, call: Call) -> LimitPolicy:
        api_key = call.api_key
        found = self._key_policies.get(api_key.id)
        if found is not None and found[0] is api_key.limits:
            return found[1]
        policy = LimitPolicy.from_limits(api_key.limits)
        self._key_policies[api_key.id] = (api_key.limits, policy)
        return policy

    async def project_policy(self, project_id: int) -> LimitPolicy:
        """The project's ``settings.limits``, re-read at most every ``key_cache_ttl`` seconds.

        Once known, stale limits keep answering while one background read refreshes them, so
        requests never queue behind the database.
        """
        known = self.known_project_policy(project_id)
        return known if known is not None else await self._refresh_project(project_id)

    def known_project_policy(self, project_id: int) -> LimitPolicy | None:
        """The project's limits if they were read before (None: never), without a coroutine;
        stale ones are refreshed in the background."""
        found = self._project_policies.get(project_id)
        if found is None:
            return None
        if found[0] <= time.monotonic() and project_id not in self._refreshing:
            self._refreshing.add(project_id)
            task = asyncio.get_running_loop().create_task(self._refresh_project(project_id))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return found[1]

    async def _refresh_project(self, project_id: int) -> LimitPolicy:
        try:
            limits = await asyncio.to_thread(self._read_project_limits, project_id)
        except PilothouseError:
            limits = {}
        except Exception:
            log.warning("could not read limits of project %s", project_id, exc_info=True)
            found = self._project_policies.get(project_id)
            return found[1] if found is not None else LimitPolicy()
        finally:
            self._refreshing.discard(project_id)
        policy = LimitPolicy.from_limits(limits)
        self._project_policies[project_id] = (time.monotonic() + self._project_ttl, policy)
        return policy

    def forget_project(self, project_id: int) -> None:
        """Read the project's limits again on its next request (they were just changed)."""
        self._project_policies.pop(project_id, None)

    def _read_project_limits(self, project_id: int) -> dict[str, Any]:
        with self.runtime.db.read() as conn:
            row = identity_store.get_project(conn, project_id)
        settings = row["settings"] or {}
        limits = settings.get("limits") if isinstance(settings, dict) else None
        return limits if isinstance(limits, dict) else {}

    async def admit(self, call: Call, body_bytes: int) -> Admission:
        """Check the key's and the project's limits and budgets, or raise 429."""
        api_key = call.api_key
        project_id = api_key.project_id
        project = self.known_project_policy(project_id)
        if project is None:
            project = await self._refresh_project(project_id)
        # The subjects of a key's calls are the same tuple until its or its project's limits
        # change: built once, not per call.
        known = self._checks.get(api_key.id)
        if known is None or known[0] is not api_key.limits or known[1] is not project:
            subjects = (
                (f"key:{api_key.id}", self.key_policy(call)),
                (f"project:{project_id}", project),
            )
            known = self._checks[api_key.id] = (api_key.limits, project, subjects)
        checks = known[2]
        estimated = estimate_tokens(call.body, body_bytes)
        limiter = self.limiter
        try:
            if type(limiter) is MemoryLimiter:  # it answers at once: no coroutine per request
                admission = limiter.admit_now(checks, estimated)
            else:
                admission = await limiter.admit_all(checks, estimated)
        except PilothouseError:
            raise
        except Exception:  # noqa: BLE001 - a limits store outage must not stop the gateway
            self._warn("limits", "limits backend failed; requests are let through")
            admission = Admission(subjects=checks, estimated_tokens=estimated)
        admission.owner = (project_id, api_key.id)
        if admission.headers:
            call.response_headers.update(admission.headers)
        return admission

    # --- cache ----------------------------------------------------------------------------

    def cache_ttl_for(self, call: Call) -> float | None:
        """Seconds to cache this call's answer, or None when it does not opt in."""
        if call.operation not in CACHEABLE:
            return None
        header = call.headers.get("x-pilothouse-cache")
        if header is not None:
            return cache_ttl_of(header, self.cache_ttl)
        limits = call.api_key.limits
        ttl = limits.get("cache_ttl")
        if isinstance(ttl, int | float) and not isinstance(ttl, bool) and ttl > 0:
            return float(ttl)
        if limits.get("cache") is True or limits.get("cache") == 1:
            return self.cache_ttl
        if self.cache_models and any(fnmatch.fnmatchcase(call.model, p) for p in self.cache_models):
            return self.cache_ttl
        return None

    async def cached(self, call: Call) -> dict[str, Any] | None:
        """The cached answer for this call (as chunks for a stream), or None."""
        if self.cache_ttl_for(call) is None:
            return None
        key = cache_key(call.api_key.project_id, call.body, call.operation)
        call.metadata["cache_key"] = key
        try:
            hit = await self.cache.get(key)
        except Exception:  # noqa: BLE001 - a cache outage is a miss
            self._warn("cache-read", "gateway cache read failed; answering from upstream")
            hit = None
        self.metrics.observe_cache(call.model, hit is not None)
        call.response_headers["x-pilothouse-cache"] = "hit" if hit is not None else "miss"
        if hit is None:
            return None
        call.cache_hit = True
        call.cost_usd = 0.0
        usage = hit.get("usage")
        call.usage = usage if isinstance(usage, dict) else None
        if isinstance(hit.get("model"), str):
            call.served_model = hit["model"]
        if call.stream:
            options = call.body.get("stream_options") or {}
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            return {"chunks": replay_as_chunks(hit, include_usage=include_usage)}
        return hit

    async def store(self, call: Call, result: dict[str, Any] | None) -> None:
        """Keep a fresh answer for the next identical request (a stream's as the complete
        answer its chunks amount to)."""
        key = call.metadata.get("cache_key")
        if not key or result is None or call.cache_hit:
            return
        ttl = self.cache_ttl_for(call)
        if ttl is None:
            return
        if isinstance(self.cache, MemoryCache):
            await self.cache.set(key, result, ttl)
            return
        # Database and Redis writes happen after the answer is sent.
        task = asyncio.get_running_loop().create_task(self._store_later(key, result, ttl))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _store_later(self, key: str, value: dict[str, Any], ttl: float) -> None:
        try:
            await self.cache.set(key, value, ttl)
        except Exception:  # noqa: BLE001 - a cache outage only costs a future miss
            self._warn("cache-write", "gateway cache write failed")

    # --- after the call -------------------------------------------------------------------

    def price(self, call: Call, input_tokens: int, output_tokens: int) -> float | None:
        deployment = call.deployment
        if call.cache_hit or deployment is None:
            return 0.0 if call.cache_hit else None
        return costs.price(
            deployment.provider, deployment.model, input_tokens, output_tokens, deployment.price
        )

    async def settle(self, call: Call, admission: Admission) -> None:
        """Charge real tokens and cost, free the concurrency slot, count the metrics."""
        input_tokens, output_tokens = call.input_tokens, call.output_tokens
        try:
            if call.cost_usd is None:
                call.cost_usd = self.price(call, input_tokens or 0, output_tokens or 0)
            tokens_in, tokens_out = input_tokens or 0, output_tokens or 0
            cost = call.cost_usd or 0.0
            limiter = self.limiter
            if type(limiter) is MemoryLimiter:
                limiter.settle_now(admission, tokens_in + tokens_out, cost, tokens_in, tokens_out)
            else:
                await limiter.settle(
                    admission,
                    tokens_in + tokens_out,
                    cost,
                    input_tokens=tokens_in,
                    output_tokens=tokens_out,
                )
        except Exception:  # noqa: BLE001 - the answer is already out; never fail it here
            self._warn("settle", f"settling gateway call {call.request_id} failed")
        finally:
            admission.release()
            self.observe(call, True, input_tokens, output_tokens)

    def observe_failure(self, call: Call) -> None:
        """Count a request that ended before admission (auth, validation, limits)."""
        routed = isinstance(call.error, RateLimited)
        self.observe(call, routed, call.input_tokens, call.output_tokens)

    def observe(
        self, call: Call, routed: bool, input_tokens: int | None, output_tokens: int | None
    ) -> None:
        error = call.error
        status_code = error.status if error is not None else 200
        if call.status == "cancelled":
            status_code = 499  # client closed the request (nginx's convention)
        ended = call.ended if call.ended is not None else time.perf_counter()
        latency = ended - call.started
        ttft = tpot = None
        if call.stream and call.first_token_s is not None and not call.cache_hit:
            ttft = call.first_token_s
            produced = output_tokens or call.output_chunks
            if produced > 1:
                tpot = max(0.0, latency - ttft) / (produced - 1)
        self.metrics.observe_request(
            model=call.model if routed and call.model else "-",
            deployment=call.deployment.id if call.deployment is not None else "-",
            status_code=status_code,
            latency_s=latency,
            ttft_s=ttft,
            tpot_s=tpot,
            overhead_s=max(0.0, latency - call.upstream_s),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=call.cost_usd,
            error_code=error.code if error is not None else None,
        )


__all__ = ["Accounting", "cache_ttl_of", "estimate_tokens"]
