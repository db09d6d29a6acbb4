"""Evaluation-gated promotion: a protected label moves only when its suite passes."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner
from starlette.testclient import TestClient

from pilothouse.app import create_app
from pilothouse.cli import cli
from pilothouse.evals.plugin import promote
from pilothouse.jobs import JobContext
from pilothouse.prompts.api import registry_of
from pilothouse.prompts.registry import Actor
from pilothouse.runtime import Runtime
from pilothouse.store import prompts as prompt_store
from tests.conftest import ADMIN_KEY
from tests.evals.fakes import CAPITALS


def _save(runtime: Runtime, system: str, labels: list[str]) -> int:
    saved = registry_of(runtime).save(
        1,
        "qa",
        actor=Actor("test"),
        prompt_type="chat",
        labels=labels,
        template=[
            {"role": "system", "content": system},
            {"role": "user", "content": "What is the capital of {{country}}?"},
        ],
    )
    return int(saved.version["version"])


def _label(runtime: Runtime, label: str) -> int:
    with runtime.db.read() as conn:
        row = prompt_store.get_prompt(conn, 1, "qa")
        found = prompt_store.get_label(conn, row["id"], label)
    assert found is not None
    return int(found["version"])


def _suite(tmp_path: Path) -> Path:
    data = tmp_path / "capitals.jsonl"
    data.write_text(
        "".join(json.dumps({"country": c, "expected": city}) + "\n" for c, city in CAPITALS.items())
    )
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        yaml.safe_dump(
            {
                "dataset": {"name": "capitals", "file": data.name},
                "model": "fake",
                "evaluators": ["equals"],
            }
        )
    )
    return suite


def test_cli_promotes_only_when_the_suite_passes(
    eval_runtime: Runtime, database_url: str, gateway_file: Path, tmp_path: Path
):
    runtime = eval_runtime
    _save(runtime, "Reply with the city name only.", ["production"])
    worse = _save(runtime, "Reply with a full sentence.", ["staging"])
    suite = _suite(tmp_path)
    runner = CliRunner()
    env = {"PILOTHOUSE_GATEWAY_CONFIG": str(gateway_file)}
    base = ["--database-url", database_url, "eval"]
    protected = runner.invoke(cli, [*base, "protect", "qa", "production", "--suite", str(suite)])
    assert protected.exit_code == 0, protected.output
    refused = runner.invoke(
        cli, [*base, "promote", "qa", "--from", "staging", "--to", "production"], env=env
    )
    assert refused.exit_code == 1, refused.output
    assert "production stays at v1" in refused.output
    assert _label(runtime, "production") == 1
    # A staging version as good as production passes and moves the label.
    better = _save(runtime, "Reply with the city name only. No punctuation.", ["staging"])
    assert better == worse + 1
    moved = runner.invoke(
        cli, [*base, "promote", "qa", "--from", "staging", "--to", "production"], env=env
    )
    assert moved.exit_code == 0, moved.output
    assert f"production -> v{better} (was v1)" in moved.output
    registry_of(runtime).invalidate()
    assert _label(runtime, "production") == better
    with runtime.db.read() as conn:
        row = prompt_store.get_prompt(conn, 1, "qa")
        events, _ = prompt_store.label_events(conn, row["id"], label="production")
    assert "after evaluation passed (experiments baseline #" in events[0]["reason"]
    unprotected = runner.invoke(
        cli, [*base, "promote", "qa", "--from", "staging", "--to", "canary"], env=env
    )
    assert unprotected.exit_code == 2 and "is not protected" in unprotected.output


def test_api_protects_and_runs_the_promotion_job(eval_runtime: Runtime, tmp_path: Path):
    runtime = eval_runtime
    _save(runtime, "Reply with the city name only.", ["production"])
    _save(runtime, "Reply with a full sentence.", ["staging"])
    items = [{"country": c, "expected": city} for c, city in CAPITALS.items()]
    with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        c.post("/api/datasets", json={"name": "capitals", "items": items})
        suite = {"dataset": "capitals", "model": "fake", "evaluators": ["equals"]}
        assert c.post("/api/promotions", json={
            "prompt": "qa", "from_label": "staging", "to_label": "production"
        }).status_code == 400  # fmt: skip
        put = c.put(
            "/api/protected-labels", json={"prompt": "qa", "label": "production", "suite": suite}
        )
        assert put.status_code == 200, put.text
        assert [p["label"] for p in c.get("/api/protected-labels").json()] == ["production"]
        bad = c.put("/api/protected-labels", json={"prompt": "qa", "label": "x", "suite": {}})
        assert bad.status_code == 400
        queued = c.post(
            "/api/promotions",
            json={"prompt": "qa", "from_label": "staging", "to_label": "production"},
        )
        assert queued.status_code == 202 and queued.json()["job_id"], queued.text
        for refused in (
            c.put("/api/prompts/qa/labels/production", json={"version": 2}),
            c.delete("/api/prompts/qa/labels/production"),
            c.post("/api/prompts/qa/labels/production/rollback"),
        ):
            assert refused.status_code == 403, refused.text
            assert refused.json()["code"] == "label_protected"
        assert c.put("/api/prompts/qa/labels/canary", json={"version": 2}).status_code == 200
        result = promote(
            JobContext(runtime.settings, runtime.db), 1, "qa", "staging", "production", "admin"
        )
        assert result["moved"] is False and result["passed"] is False
        assert _label(runtime, "production") == 1
        gone = c.delete("/api/protected-labels", params={"prompt": "qa", "label": "production"})
        assert gone.status_code == 204
        moved = c.put("/api/prompts/qa/labels/production", json={"version": 2})
        assert moved.status_code == 200, moved.text
