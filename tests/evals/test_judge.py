"""LLM-as-judge against a local fake judge: good, malformed and out-of-range answers."""

from __future__ import annotations

import math

import pytest

from pilothouse.evals import experiments
from pilothouse.evals.api import datasets_of
from pilothouse.evals.judge import parse_verdict
from pilothouse.prompts.api import registry_of
from pilothouse.runtime import Runtime
from pilothouse.store import evals as store
from tests.evals.fakes import FakeModel


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"score": 4, "reason": "ok"}', (4.0, "ok")),
        ('Here you go:\n```json\n{"score": "2", "reason": "meh"}\n```', (2.0, "meh")),
        ('My verdict {"score": 1} done', (1.0, "")),
    ],
)
def test_parse_verdict_accepts_json_in_common_wrappers(text, expected):
    assert parse_verdict(text, 1, 5) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("excellent answer", "not a JSON object"),
        ('{"score": 9, "reason": "x"}', "outside the scale 1..5"),
        ('{"score": NaN}', "not a JSON object"),
        ('{"score": "high"}', "not a number"),
        ('{"reason": "no score"}', "missing or not a number"),
        ('{"score": true}', "missing or not a number"),
        ('{"score": 3, "reason": 7}', "'reason' is not a string"),
    ],
)
def test_parse_verdict_refuses_bad_answers(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_verdict(text, 1, 5)


def test_judge_retries_then_reports_a_clear_error_never_nan(
    eval_runtime: Runtime, fake_model: tuple[FakeModel, str]
):
    model, _ = fake_model
    model.judge_answers = [
        '{"score": 5, "reason": "correct"}',  # item 1: good at once
        "Sure! The score is high.",  # item 2: malformed, then good
        '```json\n{"score": 3, "reason": "partly"}\n```',
        '{"score": 11, "reason": "off the scale"}',  # item 3: bad three times
        "{'score': 4}",
        '{"reason": "forgot the score"}',
    ]
    runtime = eval_runtime
    items = [{"country": c, "expected": c} for c in ("France", "Japan", "Italy")]
    datasets_of(runtime).create(1, "judged", items=items)
    row = experiments.create(
        runtime,
        1,
        dataset="judged",
        target={"type": "python", "function": "tests.evals.targets:slow_echo"},
        evaluators=[{"type": "llm-judge", "rubric": "correctness", "model": "judge"}],
        config={"concurrency": 1},
    )
    summary = experiments.run_sync(runtime, row["id"])
    judge = summary["evaluators"]["llm-judge"]
    assert judge["n"] == 2 and judge["errors"] == 1
    assert judge["mean"] == 0.75 and all(math.isfinite(v) for v in judge["ci95"])
    with runtime.db.read() as conn:
        scores = [r["scores"][0] for r in store.results_of(conn, row["id"])]
    good, retried, failed = scores
    assert good["value"] == 1.0 and good["metadata"]["attempts"] == 1
    assert good["metadata"]["rubric"] == "eval-rubric-correctness@1"
    assert good["cost_usd"] > 0 and good["latency_ms"] > 0
    assert retried["value"] == 0.5 and retried["metadata"]["attempts"] == 2
    assert failed["value"] is None and failed["passed"] is None
    assert failed["error"].startswith("judge answer invalid after 3 attempt(s)")
    assert "outside the scale 1..5" in failed["error"]
    assert failed["cost_usd"] > good["cost_usd"]
    # The re-ask carries the judge's bad answer and the reason it was refused.
    reask = model.requests[2]["messages"]
    assert reask[-2]["content"] == "Sure! The score is high."
    assert "That answer is invalid: the answer is not a JSON object" in reask[-1]["content"]
    # The rubric is a versioned prompt: an edit makes version 2 and later judges use it.
    rubric = registry_of(runtime).resolve(1, "eval-rubric-correctness")
    assert rubric.version == 1 and "Reference answer" in rubric.template[1]["content"]


def test_judge_calls_respect_the_experiment_concurrency(
    eval_runtime: Runtime, fake_model: tuple[FakeModel, str]
):
    model, _ = fake_model
    model.delay = 0.05
    model.judge_answers = ['{"score": 4, "reason": "ok"}'] * 12
    runtime = eval_runtime
    items = [{"country": f"c{i}", "expected": "x"} for i in range(12)]
    datasets_of(runtime).create(1, "busy", items=items)
    row = experiments.create(
        runtime,
        1,
        dataset="busy",
        target={"type": "python", "function": "tests.evals.targets:slow_echo"},
        evaluators=[{"type": "llm-judge", "model": "judge"}],
        config={"concurrency": 3},
    )
    summary = experiments.run_sync(runtime, row["id"])
    assert summary["evaluators"]["llm-judge"]["n"] == 12
    assert 1 < model.most_in_flight <= 3
