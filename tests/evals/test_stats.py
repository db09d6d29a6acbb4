"""Aggregates and paired comparison."""

from __future__ import annotations

from pilothouse.evals import stats


def test_mean_ci_and_wilson():
    mean, ci = stats.mean_ci([1.0, 0.0, 1.0, 1.0])
    assert mean == 0.75 and ci is not None and ci[0] < 0.75 < ci[1]
    assert stats.mean_ci([]) == (None, None)
    low, high = stats.wilson(8, 10) or [0, 0]
    assert 0.44 < low < 0.5 and 0.94 < high < 0.97


def test_summary_leaves_errors_out_of_means():
    rows = [
        {"item_id": 1, "error": None, "latency_ms": 5.0, "cost_usd": 0.1, "output": "a",
         "scores": [{"name": "j", "value": 1.0, "passed": True}]},
        {"item_id": 2, "error": None, "latency_ms": 7.0, "cost_usd": None, "output": "b",
         "scores": [{"name": "j", "value": None, "passed": None, "error": "garbage"}]},
    ]  # fmt: skip
    summary = stats.summarize(rows, ["j"])
    assert summary["evaluators"]["j"] == {
        "n": 1, "mean": 1.0, "ci95": [1.0, 1.0], "pass_rate": 1.0, "pass_ci95": [0.206543, 1.0],
        "passed": 1, "failed": 0, "errors": 1,
    }  # fmt: skip
    assert summary["cost_usd"] == 0.1 and summary["latency_ms"]["p50"] == 7.0


def test_compare_finds_regressions_and_ignores_noise():
    base = {f"k{i}": {"s": 1.0} for i in range(30)}
    worse = {f"k{i}": {"s": 0.0 if i < 12 else 1.0} for i in range(30)}
    result = stats.compare(base, worse, ["s"])["evaluators"]["s"]
    assert (result["wins"], result["losses"], result["ties"]) == (0, 12, 18)
    assert result["significant"] and result["verdict"] == "regression"
    assert result["ci95"][1] < 0
    noisy = {f"k{i}": {"s": 0.0 if i == 3 else 1.0} for i in range(30)}
    one = stats.compare(base, noisy, ["s"])
    assert one["evaluators"]["s"]["verdict"] == "no significant difference"
    assert one["items"][0]["key"] == "k3" and one["items"][0]["delta"] == -1.0
    same = stats.compare(base, base, ["s"])["evaluators"]["s"]
    assert same["p_value"] == 1.0 and same["ties"] == 30
