"""Experiments through the gateway, python targets, retries, traces and scores, the job, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from starlette.testclient import TestClient

from pilothouse.app import create_app
from pilothouse.evals import experiments
from pilothouse.evals.api import datasets_of
from pilothouse.evals.plugin import run_experiment
from pilothouse.jobs import JobContext
from pilothouse.prompts.api import registry_of
from pilothouse.prompts.registry import Actor
from pilothouse.runtime import Runtime
from pilothouse.store import evals as store
from pilothouse.store import traces as trace_store
from tests.conftest import ADMIN_KEY
from tests.evals.fakes import CAPITALS

ITEMS = [{"input": {"country": c}, "expected": city, "key": c} for c, city in CAPITALS.items()]
SHORT = [
    {"role": "system", "content": "Reply with the city name only."},
    {"role": "user", "content": "What is the capital of {{country}}?"},
]


def _prompt(runtime: Runtime, template=SHORT) -> int:
    saved = registry_of(runtime).save(
        1, "capital", actor=Actor("test"), template=template, prompt_type="chat"
    )
    return int(saved.version["version"])


def test_prompt_target_through_the_gateway(eval_runtime: Runtime):
    runtime = eval_runtime
    datasets_of(runtime).create(1, "capitals", items=ITEMS)
    version = _prompt(runtime)
    row = experiments.create(
        runtime,
        1,
        dataset="capitals",
        target={"type": "prompt", "prompt": "capital", "version": version, "model": "fake"},
        evaluators=["equals", {"type": "cost", "max_usd": 1}, {"type": "latency", "max_ms": 60000}],
        config={"concurrency": 3},
    )
    seen: list[tuple[int, int]] = []
    summary = experiments.run_sync(runtime, row["id"], lambda d, t: seen.append((d, t)))
    assert seen[-1] == (10, 10)
    equals = summary["evaluators"]["equals"]
    assert (equals["mean"], equals["pass_rate"], equals["errors"]) == (1.0, 1.0, 0)
    assert equals["ci95"] == [1.0, 1.0]
    assert summary["evaluators"]["cost"]["pass_rate"] == 1.0
    assert summary["cost_usd"] > 0
    with runtime.db.read() as conn:
        results = store.results_of(conn, row["id"])
        experiment = store.get_experiment(conn, row["id"])
    assert experiment["status"] == "completed" and experiment["summary"]["results"] == 10
    assert {r["output"] for r in results} == set(CAPITALS.values())
    assert all(r["cost_usd"] and r["cost_usd"] > 0 for r in results)
    # Each item has its own trace: the eval root span and the gateway's span below it.
    runtime.traces.flush()
    with runtime.db.read() as conn:
        trace = trace_store.get_trace(conn, 1, results[0]["trace_id"])
        spans = trace_store.spans_of(conn, 1, results[0]["trace_id"])
        scores = trace_store.scores_of(conn, 1, [results[0]["trace_id"]])
    assert trace is not None and trace["has_root"]
    assert {s["name"] for s in spans} == {f"eval {row['name']}", "chat fake"}
    gateway_span = next(s for s in spans if s["operation"] == "chat")
    root = next(s for s in spans if s["parent_span_id"] is None)
    assert gateway_span["parent_span_id"] == root["span_id"]
    assert gateway_span["prompt_name"] == "capital" and gateway_span["prompt_version"] == version
    assert {s["name"] for s in scores} == {"equals", "cost", "latency"}
    assert all(s["source"] == "eval" for s in scores)


def test_python_target_retries_and_per_item_errors(eval_runtime: Runtime):
    runtime = eval_runtime
    items = [{"input": "a", "expected": "a"}, {"input": "b1"}, {"input": "boom"}]
    datasets_of(runtime).create(1, "flaky", items=items)
    row = experiments.create(
        runtime,
        1,
        dataset="flaky",
        target={"type": "python", "function": "tests.evals.targets:flaky"},
        evaluators=[
            {"type": "python", "function": "tests.evals.targets:has_digit", "name": "digit"},
            "equals",
        ],
        config={"retries": 1, "backoff": 0.01, "repeats": 2},
    )
    summary = experiments.run_sync(runtime, row["id"])
    assert summary["results"] == 6 and summary["target_errors"] == 2
    assert summary["evaluators"]["digit"]["passed"] == 2
    # "b1" has no expected output: equals errs for it, and the mean is over "a" only.
    assert summary["evaluators"]["equals"]["errors"] == 2
    assert summary["evaluators"]["equals"]["mean"] == 1.0
    assert summary["consistency"] == {"output_agreement": 1.0}
    with runtime.db.read() as conn:
        errors = [r["error"] for r in store.results_of(conn, row["id"]) if r["error"]]
    assert errors == ["ValueError: the target broke"] * 2


def test_api_job_results_and_compare(eval_runtime: Runtime):
    runtime = eval_runtime
    with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        c.post("/api/datasets", json={"name": "caps", "items": ITEMS[:4]})
        body = {
            "dataset": "caps",
            "target": {"type": "model", "model": "mock/echo"},
            "evaluators": [{"type": "icontains", "name": "echoes", "value": "capital"}, "equals"],
        }
        created = c.post("/api/experiments", json=body)
        assert created.status_code == 202, created.text
        assert created.json()["job_id"] and created.json()["status"] == "pending"
        experiment_id = created.json()["id"]
        run_experiment(JobContext(runtime.settings, runtime.db), experiment_id)
        got = c.get(f"/api/experiments/{experiment_id}").json()
        assert got["status"] == "completed" and got["dataset_version"] == 1
        assert got["summary"]["evaluators"]["equals"]["pass_rate"] == 0.0
        results = c.get(f"/api/experiments/{experiment_id}/results").json()["results"]
        assert sorted(r["key"] for r in results) == ["France", "Italy", "Japan", "Spain"]
        page = c.get(f"/api/experiments/{experiment_id}/results", params={"limit": 3}).json()
        assert len(page["results"]) == 3 and page["next_cursor"]
        rest = c.get(
            f"/api/experiments/{experiment_id}/results",
            params={"limit": 3, "cursor": page["next_cursor"]},
        ).json()
        assert len(rest["results"]) == 1 and rest["next_cursor"] is None
        resumed = c.post(f"/api/experiments/{experiment_id}/resume")
        assert resumed.status_code == 202 and resumed.json()["job_id"]
        refused = c.post(
            "/api/experiments",
            json={**body, "target": {"type": "python", "function": "os:getcwd"}},
        )
        assert refused.status_code == 400
        compare = c.get(
            "/api/experiments/compare",
            params={"baseline": experiment_id, "candidate": [experiment_id]},
        ).json()
        assert compare["candidates"][0]["evaluators"]["equals"]["ties"] == 4
        names = {e["name"] for e in c.get("/api/evaluators").json()}
        assert {"equals", "rouge-l", "bleu", "llm-judge", "embedding-similarity"} <= names


def test_a_killed_run_resumes_and_evaluates_each_item_once(
    eval_runtime: Runtime, database_url: str, tmp_path: Path
):
    runtime = eval_runtime
    items = [{"input": {"country": f"country-{i:02d}"}, "key": f"k{i:02d}"} for i in range(40)]
    datasets_of(runtime).create(1, "many", items=items)
    row = experiments.create(
        runtime,
        1,
        dataset="many",
        target={"type": "python", "function": "tests.evals.targets:slow_echo"},
        evaluators=[{"type": "contains", "value": "country"}],
        config={"concurrency": 2},
    )
    log = tmp_path / "calls.log"
    env = {
        **os.environ,
        "EVAL_CALL_LOG": str(log),
        "EVAL_PHASE": "first",
        "EVAL_DELAY": "0.05",
        "PILOTHOUSE_DATA_DIR": str(tmp_path / "data"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "pilothouse", "--database-url", database_url,
         "eval", "resume", str(row["id"])],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            with runtime.db.read() as conn:
                stored = len(store.done_keys(conn, row["id"]))
            if stored >= 10:
                break
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the run did not progress"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
    with runtime.db.read() as conn:
        before = {k for k, _ in store.done_keys(conn, row["id"])}
        status = store.get_experiment(conn, row["id"])["status"]
    assert 10 <= len(before) < 40 and status == "running"
    os.environ["EVAL_CALL_LOG"] = str(log)
    os.environ["EVAL_PHASE"] = "resume"
    try:
        summary = experiments.run_sync(runtime, row["id"])
    finally:
        del os.environ["EVAL_CALL_LOG"], os.environ["EVAL_PHASE"]
    assert summary["results"] == 40 and summary["evaluators"]["contains"]["passed"] == 40
    with runtime.db.read() as conn:
        results = store.results_of(conn, row["id"])
        ids = {r["item_id"]: r for r in results}
        keys = {i: r["key"] for i, r in store.items_by_id(conn, list(ids)).items()}
    assert len(results) == 40 == len(ids)
    resumed = [
        line.split()[1] for line in log.read_text().splitlines() if line.startswith("resume")
    ]
    stored_before = {keys[i] for i in before}
    # Nothing stored before the kill ran again; everything else ran exactly once.
    assert not {f"k{c.split('-')[1]}" for c in resumed} & stored_before
    assert len(resumed) == len(set(resumed)) == 40 - len(before)
    with runtime.db.read() as conn:
        count = conn.execute(
            sa.select(sa.func.count())
            .select_from(trace_store.scores)
            .where(trace_store.scores.c.author == f"experiment:{row['id']}")
        ).scalar()
    assert count == 40
