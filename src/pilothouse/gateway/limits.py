"""Rate limits, concurrency caps and budgets, checked on every gateway request.

Each request is checked against several *subjects* at once (``key:<id>`` and ``project:<id>``):
all must admit it, or none is charged. Request and token rates use GCRA (the generic cell
rate algorithm): per subject one number, the *theoretical arrival time*, so admission is O(1)
and a full bucket allows a burst of the whole per-minute limit. Tokens are charged on the
estimate at admission and corrected with the real count at :meth:`Limiter.settle`.

Two backends share this interface: :class:`MemoryLimiter` (one process; the event loop is the
lock) and :class:`~pilothouse.gateway.redis_limits.RedisLimiter` (Lua scripts on a shared Redis,
exact across replicas). Budgets read the spend kept by
:class:`~pilothouse.gateway.spend.SpendLedger`.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pilothouse.errors import BudgetExceeded, ConfigError, RateLimited

if TYPE_CHECKING:
    from pilothouse.gateway.redis_limits import RedisLimiter
    from pilothouse.gateway.spend import SpendLedger
    from pilothouse.settings import Settings

#: The window of RPM and TPM limits, in seconds.
WINDOW = 60.0
#: Float slack in request counts (k * (60 / k) may exceed 60 by a rounding error).
EPSILON = 1e-6

Period = Literal["day", "month"]
Clock = Callable[[], float]


@dataclass(frozen=True)
class LimitPolicy:
    """The limits of one subject; ``None`` means unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None
    budget_usd: float | None = None
    budget_period: Period = "day"
    #: A monthly cap on top of a daily ``budget_usd`` (when a key sets both).
    budget_usd_month: float | None = None

    @classmethod
    def from_limits(cls, limits: Mapping[str, Any] | None) -> LimitPolicy:
        """Read an API key's or project's ``limits`` dict (rpm, tpm, max_concurrent,
        budget_usd_day, budget_usd_month); unknown keys are ignored."""
        limits = limits or {}

        def number(name: str, kind: type[int] | type[float]) -> Any:
            value = limits.get(name)
            if value is None or isinstance(value, bool):
                return None
            try:
                out = kind(value)
            except (TypeError, ValueError):
                return None
            return out if out >= 0 else None

        day = number("budget_usd_day", float)
        month = number("budget_usd_month", float)
        return cls(
            rpm=number("rpm", int),
            tpm=number("tpm", int),
            max_concurrent=number("max_concurrent", int),
            budget_usd=day if day is not None else month,
            budget_period="day" if day is not None else "month",
            budget_usd_month=month if day is not None else None,
        )

    def budgets(self) -> tuple[tuple[Period, float], ...]:
        """Every (period, USD) cap of this policy."""
        return self._budgets

    @functools.cached_property
    def _budgets(self) -> tuple[tuple[Period, float], ...]:
        out: list[tuple[Period, float]] = []
        if self.budget_usd is not None:
            out.append((self.budget_period, self.budget_usd))
        if self.budget_usd_month is not None:
            out.append(("month", self.budget_usd_month))
        return tuple(out)

    @functools.cached_property
    def unlimited(self) -> bool:
        return (
            self.rpm is None
            and self.tpm is None
            and self.max_concurrent is None
            and not self._budgets
        )


def period_start(period: Period, now: float) -> datetime:
    """Start (UTC midnight) of the day or month containing ``now``."""
    moment = datetime.fromtimestamp(now, UTC)
    start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return start.replace(day=1) if period == "month" else start


def period_end(period: Period, now: float) -> datetime:
    """End of the day or month containing ``now`` (when a budget resets)."""
    start = period_start(period, now)
    if period == "day":
        return start + timedelta(days=1)
    return (start + timedelta(days=32)).replace(day=1)


def format_reset(seconds: float) -> str:
    """A duration the way OpenAI's ``x-ratelimit-reset-*`` headers write it (``20ms``, ``6m0s``)."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    total = math.ceil(seconds * 1000) / 1000
    minutes, secs = divmod(total, 60)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


@dataclass(slots=True)
class Usage:
    """Where one rate limit of one subject stands after an admission (for the headers)."""

    limit: int
    remaining: int
    reset: float


class RateLimitReached(RateLimited):
    """429 from a request, token or concurrency limit; carries the ``x-ratelimit-*`` headers."""

    def __init__(self, detail: str, *, retry_after: float, headers: dict[str, str]) -> None:
        super().__init__(detail, retry_after=retry_after)
        self._limit_headers = headers

    def headers(self) -> dict[str, str]:
        return {**self._limit_headers, **super().headers()}


_RATE_HEADERS = {
    name: (
        f"x-ratelimit-limit-{name}",
        f"x-ratelimit-remaining-{name}",
        f"x-ratelimit-reset-{name}",
    )
    for name in ("requests", "tokens")
}


def rate_headers(requests: Usage | None, tokens: Usage | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if requests is not None:
        _rate_header(out, "requests", requests.limit, requests.remaining, requests.reset)
    if tokens is not None:
        _rate_header(out, "tokens", tokens.limit, tokens.remaining, tokens.reset)
    return out


def _rate_header(out: dict[str, str], name: str, limit: int, remaining: int, reset: float) -> None:
    limit_name, remaining_name, reset_name = _RATE_HEADERS[name]
    out[limit_name] = str(limit)
    out[remaining_name] = str(remaining) if remaining > 0 else "0"
    out[reset_name] = format_reset(reset)


def tighter(a: Usage | None, b: Usage) -> Usage:
    """The usage with fewer remaining (on a tie, the later reset): what to pace on."""
    if a is None or (b.remaining, -b.reset) < (a.remaining, -a.reset):
        return b
    return a


def tightest(usages: Sequence[Usage | None]) -> Usage | None:
    """The usage with the fewest remaining (what a client should pace itself on)."""
    out: Usage | None = None
    for usage in usages:
        if usage is not None:
            out = tighter(out, usage)
    return out


@dataclass(eq=False, slots=True)
class Admission:
    """A request let in: its subjects, the token estimate charged, and headers to send."""

    subjects: tuple[tuple[str, LimitPolicy], ...]
    estimated_tokens: int
    headers: dict[str, str] = field(default_factory=dict)
    #: Names this admission in a shared backend (Redis concurrency slots).
    request_id: str = ""
    _release: Callable[[], None] | None = field(default=None, repr=False)
    settled: bool = False
    #: (project_id, key_id) when the caller knows them (else read from the subjects)
    owner: tuple[int | None, int | None] | None = None

    def release(self) -> None:
        """Free the concurrency slots taken at admission (idempotent)."""
        release, self._release = self._release, None
        if release is not None:
            release()

    def ids(self) -> tuple[int | None, int | None]:
        """(project_id, key_id) named by the subjects, for spend accounting."""
        if self.owner is not None:
            return self.owner
        project_id = key_id = None
        for subject, _ in self.subjects:
            kind, _, ident = subject.partition(":")
            if ident.isdigit():
                if kind == "project":
                    project_id = int(ident)
                elif kind == "key":
                    key_id = int(ident)
        return project_id, key_id


class Limiter(Protocol):
    """What the gateway asks of a limits backend."""

    async def admit(self, subject: str, policy: LimitPolicy, estimated_tokens: int) -> Admission:
        """Admit one request for one subject or raise RateLimited / BudgetExceeded."""
        ...

    async def admit_all(
        self, checks: Sequence[tuple[str, LimitPolicy]], estimated_tokens: int
    ) -> Admission:
        """Admit one request for every subject at once; a refusal charges none of them."""
        ...

    async def settle(
        self,
        admission: Admission,
        actual_tokens: int,
        cost_usd: float,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> None:
        """Correct the token charge with the real count, record the spend and free the
        concurrency slots (once)."""
        ...


def gcra_usage(tat: float, now: float, limit: int) -> Usage:
    if limit <= 0:
        return Usage(limit=0, remaining=0, reset=WINDOW)
    interval = WINDOW / limit
    used = max(0.0, tat - now)
    remaining = math.floor((WINDOW - used) / interval + EPSILON)
    return Usage(limit=limit, remaining=remaining, reset=used)


def clamp_tokens(estimated: int, tpm: int) -> int:
    """A request larger than the whole per-minute budget waits for a full bucket, not forever."""
    return 0 if estimated < 0 else estimated if estimated < tpm else tpm


def budget_error(
    subject: str, period: Period, budget: float, spent: float, now: float
) -> Exception:
    return BudgetExceeded(
        f"Budget of ${budget:.2f} per {period} for {subject} is exhausted "
        f"(spent ${spent:.4f}); it resets at {period_end(period, now).isoformat()}.",
        retry_after=max(1.0, period_end(period, now).timestamp() - now),
    )


def rate_error(
    subject: str, what: str, limit: int, retry_after: float, headers: dict[str, str]
) -> RateLimitReached:
    unit = {"requests": "requests per min", "tokens": "tokens per min"}.get(what, what)
    return RateLimitReached(
        f"Rate limit reached for {subject} on {unit}: limit {limit}. "
        f"Please try again in {format_reset(retry_after)}.",
        retry_after=retry_after,
        headers=headers,
    )


class _Counters:
    """One subject's state in a :class:`MemoryLimiter`."""

    __slots__ = ("requests", "running", "tokens")

    def __init__(self) -> None:
        #: theoretical arrival times of the request and token rates (any past one: a full
        #: bucket), and the requests in flight
        self.requests = 0.0
        self.tokens = 0.0
        self.running = 0


def _admit_rate(
    tat: float, now: float, cost: float, limit: int
) -> tuple[float, float, tuple[int, float, int]]:
    """GCRA: check ``cost`` units against ``limit`` per :data:`WINDOW` (a burst of the whole
    limit) for the theoretical arrival time ``tat``. Returns ``(new arrival time, 0.0, where
    the rate stands)`` when admitted, else ``(tat, seconds to wait, _)``. A standing is
    ``(remaining, -reset, limit)``: of two, the smaller is the tighter (fewer remaining; on a
    tie, the later reset), as :func:`tighter` compares usages."""
    if limit <= 0:
        return tat, WINDOW, (0, 0.0, limit)
    interval = WINDOW / limit
    new_tat = (tat if tat > now else now) + cost * interval
    used = new_tat - now
    # Half an interval of slack absorbs float rounding without admitting one more unit.
    if used > WINDOW + interval / 2:
        return tat, used - WINDOW, (0, 0.0, limit)
    return new_tat, 0.0, (math.floor((WINDOW - used) / interval + EPSILON), -used, limit)


def _standing_headers(
    requests: tuple[int, float, int] | None, tokens: tuple[int, float, int] | None
) -> dict[str, str]:
    """:func:`rate_headers` of the tightest standings."""
    out: dict[str, str] = {}
    if requests is not None:
        _rate_header(out, "requests", requests[2], requests[0], -requests[1])
    if tokens is not None:
        _rate_header(out, "tokens", tokens[2], tokens[0], -tokens[1])
    return out


class MemoryLimiter:
    """Limits for one process. All state lives in objects touched only from the event loop."""

    def __init__(self, ledger: SpendLedger | None = None, clock: Clock = time.time) -> None:
        self.ledger = ledger
        self.clock = clock
        self._counters: dict[str, _Counters] = {}

    async def admit(self, subject: str, policy: LimitPolicy, estimated_tokens: int) -> Admission:
        return await self.admit_all([(subject, policy)], estimated_tokens)

    async def admit_all(
        self, checks: Sequence[tuple[str, LimitPolicy]], estimated_tokens: int
    ) -> Admission:
        return self.admit_now(checks, estimated_tokens)

    def admit_now(
        self, checks: Sequence[tuple[str, LimitPolicy]], estimated_tokens: int
    ) -> Admission:
        """:meth:`admit_all` without a coroutine: nothing here waits."""
        now = self.clock()
        ledger = self.ledger
        # (counters, policy, new request TAT, new token TAT): charged once every subject admits
        plans: list[tuple[_Counters, LimitPolicy, float | None, float | None]] = []
        requests = tokens = None  # the tightest standing of each rate, for the headers
        for subject, policy in checks:
            if policy.unlimited:
                continue
            counters = self._counters.get(subject)
            if counters is None:
                counters = self._counters[subject] = _Counters()
            for period, budget in policy.budgets():
                spent = ledger.spent(subject, period) if ledger is not None else 0.0
                if spent >= budget:  # a budget of 0 refuses even without a ledger
                    raise budget_error(subject, period, budget, spent, now)
            cap = policy.max_concurrent
            if cap is not None and counters.running >= cap:
                raise rate_error(subject, "concurrent requests", cap, 1.0, {})
            request_tat = token_tat = None
            rpm, tpm = policy.rpm, policy.tpm
            if rpm is not None:
                request_tat, wait, standing = _admit_rate(counters.requests, now, 1, rpm)
                if wait:
                    headers = rate_headers(gcra_usage(counters.requests, now, rpm), None)
                    raise rate_error(subject, "requests", rpm, wait, headers)
                if requests is None or standing < requests:
                    requests = standing
            if tpm is not None:
                cost = clamp_tokens(estimated_tokens, tpm)
                token_tat, wait, standing = _admit_rate(counters.tokens, now, cost, tpm)
                if wait:
                    headers = rate_headers(None, gcra_usage(counters.tokens, now, tpm))
                    raise rate_error(subject, "tokens", tpm, wait, headers)
                if tokens is None or standing < tokens:
                    tokens = standing
            plans.append((counters, policy, request_tat, token_tat))
        # Every subject admits the request: only now charge them all.
        held: list[_Counters] = []
        for counters, policy, request_tat, token_tat in plans:
            if request_tat is not None:
                counters.requests = request_tat
            if token_tat is not None:
                counters.tokens = token_tat
            if policy.max_concurrent is not None:
                counters.running += 1
                held.append(counters)
        admission = Admission(
            subjects=checks if type(checks) is tuple else tuple(checks),
            estimated_tokens=estimated_tokens,
            headers=_standing_headers(requests, tokens),
        )
        if held:
            admission._release = functools.partial(_free, held)
        return admission

    def running(self, subject: str) -> int:
        """Requests of ``subject`` in flight now."""
        counters = self._counters.get(subject)
        return 0 if counters is None else counters.running

    async def settle(
        self,
        admission: Admission,
        actual_tokens: int,
        cost_usd: float,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> None:
        self.settle_now(admission, actual_tokens, cost_usd, input_tokens, output_tokens)

    def settle_now(
        self,
        admission: Admission,
        actual_tokens: int,
        cost_usd: float,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> None:
        """:meth:`settle` without a coroutine."""
        if admission.settled:
            return
        admission.settled = True
        admission.release()
        for subject, policy in admission.subjects:
            tpm = policy.tpm
            if tpm:
                counters = self._counters.get(subject)
                if counters is not None:
                    charged = clamp_tokens(admission.estimated_tokens, tpm)
                    counters.tokens += (actual_tokens - charged) * WINDOW / tpm
        record_spend(self.ledger, admission, actual_tokens, cost_usd, input_tokens, output_tokens)


def _free(held: list[_Counters]) -> None:
    for counters in held:
        counters.running -= 1


def record_spend(
    ledger: SpendLedger | None,
    admission: Admission,
    actual_tokens: int,
    cost_usd: float,
    input_tokens: int | None,
    output_tokens: int | None,
) -> None:
    if ledger is None:
        return
    project_id, key_id = admission.ids()
    if project_id is None:
        return
    if input_tokens is None and output_tokens is None:
        input_tokens, output_tokens = actual_tokens, 0
    ledger.add(project_id, key_id, cost_usd, input_tokens or 0, output_tokens or 0)


def make_limiter(settings: Settings, ledger: SpendLedger | None = None) -> Limiter:
    """The limits backend the settings ask for (Redis when shared by replicas)."""
    backend = settings.gateway_limits_backend
    if backend == "auto":
        backend = "redis" if settings.redis_url else "memory"
    if backend == "memory":
        return MemoryLimiter(ledger)
    if not settings.redis_url:
        raise ConfigError("PILOTHOUSE_GATEWAY_LIMITS_BACKEND=redis needs PILOTHOUSE_REDIS_URL")
    try:
        from pilothouse.gateway.redis_limits import RedisLimiter
    except ImportError:
        raise ConfigError(
            "Redis-backed gateway limits need the redis package: pip install 'pilothouse[redis]'"
        ) from None
    return RedisLimiter(settings.redis_url, prefix=settings.gateway_redis_prefix, ledger=ledger)


def __getattr__(name: str) -> Any:
    # The Redis backend needs the optional ``redis`` package: imported only when asked for.
    if name == "RedisLimiter":
        from pilothouse.gateway.redis_limits import RedisLimiter

        return RedisLimiter
    raise AttributeError(name)


__all__ = [
    "Admission",
    "LimitPolicy",
    "Limiter",
    "MemoryLimiter",
    "RateLimitReached",
    "RedisLimiter",
    "format_reset",
    "make_limiter",
    "period_end",
    "period_start",
]
