"""Aggregates of experiment results and paired comparison of experiments, in pure Python.

- Means come with a 95 % confidence interval from Student's t; pass rates with Wilson's
  interval. Errored scores are counted apart and never enter a mean (so no NaN, ever).
- Two experiments are compared item by item on the items both scored: wins, losses and ties
  per evaluator, and a paired bootstrap of the mean difference (seeded, so reports are
  reproducible) giving its 95 % interval and a two-sided p-value.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: two-sided 97.5 % quantiles of Student's t for 1..30 degrees of freedom
T975 = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
]  # fmt: skip
BOOTSTRAP_SAMPLES = 2000
ALPHA = 0.05
TIE = 1e-9


def _t(df: int) -> float:
    return T975[df - 1] if df <= len(T975) else 1.96


def mean_ci(values: Sequence[float]) -> tuple[float | None, list[float] | None]:
    """Mean and its 95 % interval (None for no values; the mean alone for one)."""
    if not values:
        return None, None
    mean = math.fsum(values) / len(values)
    if len(values) == 1:
        return mean, [mean, mean]
    half = _t(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, [mean - half, mean + half]


def wilson(passed: int, n: int) -> list[float] | None:
    if n == 0:
        return None
    z = 1.96
    p = passed / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, center - half), min(1.0, center + half)]


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def summarize(results: Iterable[Any], names: Sequence[str]) -> dict[str, Any]:
    """Per-evaluator mean, pass rate and intervals, target errors, latency, cost, consistency."""
    rows = list(results)
    values: dict[str, list[float]] = defaultdict(list)
    passed: Counter[str] = Counter()
    judged: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    cost = 0.0
    target_errors = 0
    outputs: dict[int, list[str]] = defaultdict(list)
    for row in rows:
        if row["error"]:
            target_errors += 1
        if row["latency_ms"] is not None:
            latencies.append(row["latency_ms"])
        cost += row["cost_usd"] or 0.0
        outputs[row["item_id"]].append(repr(row["output"]))
        for score in row["scores"]:
            name = score["name"]
            cost += score.get("cost_usd") or 0.0
            if score.get("error"):
                errors[name] += 1
                continue
            if score.get("value") is not None:
                values[name].append(score["value"])
            if score.get("passed") is not None:
                judged[name] += 1
                passed[name] += bool(score["passed"])
    evaluators = {}
    for name in names:
        mean, ci = mean_ci(values[name])
        n = judged[name]
        evaluators[name] = {
            "n": len(values[name]),
            "mean": _r(mean),
            "ci95": [_r(v) for v in ci] if ci else None,
            "pass_rate": _r(passed[name] / n) if n else None,
            "pass_ci95": [_r(v) for v in wilson(passed[name], n) or []] or None,
            "passed": passed[name],
            "failed": n - passed[name],
            "errors": errors[name],
        }
    repeated = [o for o in outputs.values() if len(o) > 1]
    agreement = (
        math.fsum(Counter(o).most_common(1)[0][1] / len(o) for o in repeated) / len(repeated)
        if repeated
        else None
    )
    latencies.sort()
    return {
        "results": len(rows),
        "items": len(outputs),
        "target_errors": target_errors,
        "evaluators": evaluators,
        "latency_ms": {
            "mean": _r(math.fsum(latencies) / len(latencies)) if latencies else None,
            "p50": _r(latencies[len(latencies) // 2]) if latencies else None,
            "p95": _r(latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))])
            if latencies
            else None,
        },
        "cost_usd": round(cost, 8),
        "consistency": {"output_agreement": _r(agreement)} if agreement is not None else None,
    }


def per_item(results: Iterable[Any], keys: Mapping[int, str]) -> dict[str, dict[str, float]]:
    """item key -> evaluator -> mean value over repeats (errored scores left out)."""
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in results:
        key = keys[row["item_id"]]
        for score in row["scores"]:
            if not score.get("error") and score.get("value") is not None:
                sums[key][score["name"]].append(score["value"])
    return {k: {n: math.fsum(v) / len(v) for n, v in by.items()} for k, by in sums.items()}


def paired_bootstrap(diffs: Sequence[float], seed: int = 0) -> tuple[list[float], float]:
    """95 % interval of the mean difference and a two-sided p-value for "no difference"."""
    n = len(diffs)
    if n == 0 or all(abs(d) <= TIE for d in diffs):
        return [0.0, 0.0], 1.0
    rng = random.Random(seed)
    means = sorted(math.fsum(rng.choices(diffs, k=n)) / n for _ in range(BOOTSTRAP_SAMPLES))
    low = means[int(0.025 * BOOTSTRAP_SAMPLES)]
    high = means[int(0.975 * BOOTSTRAP_SAMPLES) - 1]
    at_or_below = sum(1 for m in means if m <= 0) / BOOTSTRAP_SAMPLES
    at_or_above = sum(1 for m in means if m >= 0) / BOOTSTRAP_SAMPLES
    p = min(1.0, 2 * min(at_or_below, at_or_above))
    return [low, high], p


def compare(
    baseline: Mapping[str, Mapping[str, float]],
    candidate: Mapping[str, Mapping[str, float]],
    names: Sequence[str],
) -> dict[str, Any]:
    """Candidate against baseline, per evaluator and per item; regressions listed first."""
    evaluators = {}
    changes: list[dict[str, Any]] = []
    for name in names:
        pairs = [
            (key, baseline[key][name], candidate[key][name])
            for key in sorted(set(baseline) & set(candidate))
            if name in baseline[key] and name in candidate[key]
        ]
        diffs = [c - b for _, b, c in pairs]
        wins = sum(1 for d in diffs if d > TIE)
        losses = sum(1 for d in diffs if d < -TIE)
        ci, p = paired_bootstrap(diffs)
        mean_diff = math.fsum(diffs) / len(diffs) if diffs else 0.0
        significant = p < ALPHA
        evaluators[name] = {
            "pairs": len(pairs),
            "wins": wins,
            "losses": losses,
            "ties": len(pairs) - wins - losses,
            "mean_diff": round(mean_diff, 6),
            "ci95": [round(v, 6) for v in ci],
            "p_value": round(p, 6),
            "significant": significant,
            "verdict": ("regression" if mean_diff < 0 else "improvement")
            if significant
            else "no significant difference",
        }
        changes.extend(
            {"key": key, "evaluator": name, "baseline": b, "candidate": c, "delta": c - b}
            for key, b, c in pairs
            if abs(c - b) > TIE
        )
    changes.sort(key=lambda c: (c["delta"] > 0, c["delta"] if c["delta"] < 0 else -c["delta"]))
    return {"evaluators": evaluators, "items": changes}
