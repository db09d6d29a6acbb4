"""Online evaluation rules: sampled new traces get scores, rate-limited, within a cost cap."""

from __future__ import annotations

import secrets
import time
from typing import Any

from starlette.testclient import TestClient

from pilothouse.app import create_app
from pilothouse.evals.online import in_sample
from pilothouse.evals.plugin import online
from pilothouse.gateway.spans import new_trace_id
from pilothouse.jobs import JobContext
from pilothouse.runtime import Runtime
from pilothouse.store import traces as trace_store
from pilothouse.tracing.model import Span
from tests.conftest import ADMIN_KEY
from tests.evals.fakes import FakeModel


def _traces(
    runtime: Runtime,
    outputs: list[str],
    tags: list[str],
    question: list[dict[str, Any]] | None = None,
) -> list[str]:
    question = question or [{"role": "user", "content": "Capital of France?"}]
    ids = []
    for n, output in enumerate(outputs):
        trace_id = secrets.token_hex(16)
        start = time.time_ns() + n * 1000
        runtime.traces.write_sync(
            [
                Span(
                    project_id=1,
                    trace_id=trace_id,
                    span_id=secrets.token_hex(8),
                    name="chat",
                    start_time_ns=start,
                    end_time_ns=start + 5_000_000,
                    operation="chat",
                    input=question,
                    output=output,
                    tags=tags,
                )
            ]
        )
        ids.append(trace_id)
    return ids


def _online_scores(runtime: Runtime, ids: list[str]) -> list[dict[str, Any]]:
    with runtime.db.read() as conn:
        rows = trace_store.scores_of(conn, 1, ids)
    return [dict(r) for r in rows if r["source"] == "online"]


def test_sampling_is_stable():
    assert in_sample("f" * 24 + "00000000", 0.01)
    assert not in_sample("0" * 24 + "ffffffff", 0.99)
    ids = [secrets.token_hex(16) for _ in range(2000)]
    share = sum(in_sample(i, 0.25) for i in ids) / len(ids)
    assert 0.2 < share < 0.3
    assert [in_sample(i, 0.25) for i in ids] == [in_sample(i, 0.25) for i in ids]


def test_gateway_trace_ids_of_one_moment_sample_at_the_rate():
    # The gateway's ids start with the time: sampling must not read that part.
    ids = [new_trace_id() for _ in range(2000)]
    assert len({i[:12] for i in ids}) < 50  # a few milliseconds apart
    share = sum(in_sample(i, 0.25) for i in ids) / len(ids)
    assert 0.2 < share < 0.3


def test_rules_score_new_matching_traces_rate_limited(eval_runtime: Runtime):
    runtime = eval_runtime
    job = JobContext(runtime.settings, runtime.db)
    with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        before = _traces(runtime, ["Paris"], ["prod"])  # older than the rule: never scored
        rule = c.post(
            "/api/online-evals",
            json={
                "name": "mentions-paris",
                "filter": {"tags": ["prod"]},
                "sample_rate": 1.0,
                "evaluators": [{"type": "icontains", "value": "paris"}],
                "max_per_run": 3,
            },
        )
        assert rule.status_code == 201, rule.text
        refused = c.post(
            "/api/online-evals",
            json={"name": "x", "evaluators": [{"type": "python", "function": "os:getcwd"}]},
        )
        assert refused.status_code == 400
        prod = _traces(runtime, ["Paris", "paris!", "Lyon", "Paris", "Rome"], ["prod"])
        other = _traces(runtime, ["Paris"], ["dev"])
        assert online(job) == {"1/mentions-paris": 3}
        assert online(job) == {"1/mentions-paris": 2}
        assert online(job) == {"1/mentions-paris": 0}
        scores = _online_scores(runtime, prod)
        assert sorted(s["value"] for s in scores) == [0.0, 0.0, 1.0, 1.0, 1.0]
        assert {s["author"] for s in scores} == {"online-rule:mentions-paris"}
        assert _online_scores(runtime, before + other) == []
        listed = c.get("/api/online-evals").json()
        assert listed[0]["scored"] == 5
        rule_id = rule.json()["id"]
        off = c.patch(f"/api/online-evals/{rule_id}", json={"enabled": False})
        assert off.json()["enabled"] is False
        _traces(runtime, ["Paris"], ["prod"])
        assert online(job) == {}
        assert c.delete(f"/api/online-evals/{rule_id}").status_code == 204


def test_cost_cap_stops_a_judge_rule(eval_runtime: Runtime, fake_model: tuple[FakeModel, str]):
    runtime = eval_runtime
    model, _ = fake_model
    model.judge_answers = ['{"score": 5, "reason": "fine"}'] * 10
    job = JobContext(runtime.settings, runtime.db)
    with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        created = c.post(
            "/api/online-evals",
            json={
                "name": "judged",
                "sample_rate": 1.0,
                "evaluators": [{"type": "llm-judge", "rubric": "relevance", "model": "judge"}],
                "cost_cap_usd": 1e-9,
            },
        )
        assert created.status_code == 201, created.text
        ids = _traces(runtime, ["Paris", "Paris", "Paris"], [])
        assert online(job) == {"1/judged": 1}
        assert online(job) == {"1/judged": 0}
        scores = _online_scores(runtime, ids)
        assert len(scores) == 1 and scores[0]["value"] == 1.0
        assert scores[0]["metadata"]["cost_usd"] > 1e-9
        assert c.get("/api/online-evals").json()[0]["spent_usd"] > 1e-9


def test_a_faithfulness_rule_gives_the_judge_the_traced_context(
    eval_runtime: Runtime, fake_model: tuple[FakeModel, str]
):
    """Groundedness judged after the fact: the rule's judge sees the documents of the chat."""
    runtime = eval_runtime
    model, _ = fake_model
    model.judge_answers = ['{"score": 1, "reason": "made up"}']
    job = JobContext(runtime.settings, runtime.db)
    with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        rule = {"type": "llm-judge", "rubric": "faithfulness", "model": "judge"}
        created = c.post(
            "/api/online-evals",
            json={"name": "grounded", "sample_rate": 1.0, "evaluators": [rule]},
        )
        assert created.status_code == 201, created.text
        question = [
            {"role": "system", "content": "<context>Refunds take 14 days.</context>"},
            {"role": "tool", "tool_call_id": "t1", "content": "Shipping is free over $50."},
            {"role": "user", "content": "How long do refunds take?"},
        ]
        ids = _traces(runtime, ["Refunds take 3 days."], [], question)
        assert online(job) == {"1/grounded": 1}
    prompt = " ".join(str(m["content"]) for m in model.requests[-1]["messages"])
    assert "Context:\nRefunds take 14 days.\n\nShipping is free over $50." in prompt
    scores = _online_scores(runtime, ids)
    assert len(scores) == 1 and scores[0]["value"] == 0.0
