"""What checks return and what a policy decides: findings, check descriptions, decisions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Where = Literal["input", "context", "output"]
WHERES: tuple[Where, ...] = ("input", "context", "output")

Action = Literal["block", "redact", "pseudonymize", "flag", "log"]
ACTIONS: tuple[Action, ...] = ("block", "redact", "pseudonymize", "flag", "log")
#: Actions that rewrite the matched spans; only span checks support them.
REWRITING: frozenset[str] = frozenset({"redact", "pseudonymize"})


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a check found: a typed span of the text with a score in [0, 1].

    Document-level checks (injection, toxicity) report one finding over the whole text.
    ``signals`` name the rules or features that fired; they never contain the matched text.
    """

    check: str
    type: str
    start: int
    end: int
    score: float
    signals: tuple[str, ...] = ()

    def public(self) -> dict[str, Any]:
        """A JSON-able view without the matched value (safe for traces and API answers)."""
        return {
            "check": self.check,
            "type": self.type,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 4),
            "signals": list(self.signals),
        }


Scan = Callable[[str, Where, Mapping[str, Any]], list[Finding]]


@dataclass(frozen=True)
class Check:
    """A guardrail check, registered through the ``register_guardrails`` hook.

    ``scan(text, where, options)`` must be fast and must not raise on any input; it returns
    findings. ``spans`` says whether findings are spans that ``redact``/``pseudonymize`` can
    rewrite (PII, secrets, banned phrases) or verdicts about the whole text (injection).
    ``complete`` checks judge only a finished text (JSON schema, groundedness): on a streamed
    answer they run once, on all of it, when the stream ends, not on the sliding window.
    """

    name: str
    scan: Scan
    description: str
    spans: bool = False
    defaults: Mapping[str, Any] = field(default_factory=dict)
    wheres: tuple[Where, ...] = WHERES
    complete: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one rule of a policy did: its check's findings that passed the threshold."""

    check: str
    action: Action
    findings: tuple[Finding, ...]
    latency_ms: float

    @property
    def fired(self) -> bool:
        return bool(self.findings)

    @property
    def score(self) -> float:
        return max((f.score for f in self.findings), default=0.0)

    def public(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "action": self.action,
            "fired": self.fired,
            "score": round(self.score, 4),
            "latency_ms": round(self.latency_ms, 4),
            "findings": [f.public() for f in self.findings],
        }


@dataclass
class Decision:
    """The result of running a policy on one text.

    ``verdict`` is ``block``, ``modify`` (text rewritten), ``flag`` or ``allow``; ``text`` is
    the text to pass on (rewritten when redacted or pseudonymized).
    """

    policy: str
    where: Where
    verdict: Literal["allow", "flag", "modify", "block"]
    text: str
    outcomes: list[Outcome]
    latency_ms: float
    blocked_by: str | None = None

    @property
    def blocked(self) -> bool:
        return self.verdict == "block"

    @property
    def findings(self) -> list[Finding]:
        return [f for o in self.outcomes for f in o.findings]

    def public(self, *, include_text: bool = False) -> dict[str, Any]:
        """JSON-able summary for traces, the API and the CLI; never the matched values."""
        out: dict[str, Any] = {
            "policy": self.policy,
            "where": self.where,
            "verdict": self.verdict,
            "blocked_by": self.blocked_by,
            "latency_ms": round(self.latency_ms, 4),
            "checks": [o.public() for o in self.outcomes],
        }
        if include_text:
            out["text"] = self.text
        return out


__all__ = [
    "ACTIONS",
    "WHERES",
    "Action",
    "Check",
    "Decision",
    "Finding",
    "Outcome",
    "Scan",
    "Where",
]
