"""What the gateway records of guardrail decisions: metrics, trace entries, the client error."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pilothouse.errors import GuardrailBlocked
from pilothouse.guardrails.model import Decision

if TYPE_CHECKING:
    from pilothouse.gateway.call import Call


def blocked(decision: Decision, path: str) -> GuardrailBlocked:
    """The client-facing error: names the policy, check and field, never the matched text."""
    return GuardrailBlocked(
        f"blocked by guardrail policy {decision.policy!r}: the {decision.blocked_by!r} check "
        f"fired on the {decision.where} ({path})",
        param=path,
        errors=[{"path": path, "policy": decision.policy, "check": decision.blocked_by}],
    )


class GuardrailMetrics:
    """Prometheus counters of guardrail decisions, on the gateway's metrics registry."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Histogram

        self.decisions = Counter(
            "pilothouse_guardrail_decisions",
            "Guardrail decisions on gateway texts, by policy, where and verdict.",
            ["policy", "where", "verdict"],
            registry=registry,
        )
        self.fired = Counter(
            "pilothouse_guardrail_fired",
            "Guardrail rules that fired, by policy, check and action.",
            ["policy", "check", "action"],
            registry=registry,
        )
        self.latency = Histogram(
            "pilothouse_guardrail_seconds",
            "Time spent running a policy on one text.",
            ["where"],
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1),
            registry=registry,
        )

    def observe(self, decision: Decision) -> None:
        self.decisions.labels(decision.policy, decision.where, decision.verdict).inc()
        self.latency.labels(decision.where).observe(decision.latency_ms / 1000)
        for outcome in decision.outcomes:
            if outcome.fired:
                self.fired.labels(decision.policy, outcome.check, outcome.action).inc()


def metrics_for(call: Call) -> GuardrailMetrics | None:
    """The runtime's guardrail metrics (created with the gateway's registry), if any."""
    state = call.runtime.state
    found = state.get("guardrails.metrics")
    if found is None:
        try:
            from pilothouse.gateway.metrics import metrics_of
        except ImportError:  # a build without the gateway's metrics
            return None
        found = state["guardrails.metrics"] = GuardrailMetrics(metrics_of(call.runtime).registry)
    metrics: GuardrailMetrics = found
    return metrics


def record(call: Call, decision: Decision, path: str) -> None:
    metrics = metrics_for(call)
    if metrics is not None:
        metrics.observe(decision)
    entry = decision.public()
    entry["path"] = path
    summary = call.metadata.setdefault("guardrails", {"policy": decision.policy, "decisions": []})
    summary["decisions"].append(entry)
    if decision.verdict != "allow":
        summary["verdict"] = decision.verdict
    summary["latency_ms"] = round(sum(d["latency_ms"] for d in summary["decisions"]), 4)


__all__ = ["GuardrailMetrics", "blocked", "metrics_for", "record"]
