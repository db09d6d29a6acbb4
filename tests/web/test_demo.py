"""``pilothouse demo`` seeds a populated project the console can show (web/demo.py)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from starlette.testclient import TestClient

from pilothouse.app import create_app
from pilothouse.cli import cli
from pilothouse.runtime import Runtime
from pilothouse.store import evals as eval_store
from pilothouse.store import identity as store
from pilothouse.store import prompts as prompt_store
from pilothouse.store import traces as trace_store
from tests.conftest import make_settings
from tests.web.conftest import ADMIN_EMAIL, sign_in


def test_demo_seeds_a_project_once(tmp_path: Path, database_url: str) -> None:
    args = ["--database-url", database_url, "--data-dir", str(tmp_path / "data")]
    result = CliRunner().invoke(cli, [*args, "demo", "--traces", "40"])
    assert result.exit_code == 0, result.output
    assert "Seeded project 'demo'" in result.output
    assert "Sign in as admin@localhost with password" in result.output
    again = CliRunner().invoke(cli, [*args, "demo"])
    assert again.exit_code != 0
    assert "already exists" in again.output

    runtime = Runtime(make_settings(tmp_path, database_url))
    try:
        with runtime.db.read() as conn:
            project = store.project_by_name(conn, "demo")
            pid = project["id"]
            assert trace_store.count_spans(conn, pid) >= 120
            prompts, _ = prompt_store.list_prompts(conn, pid)
            assert [p["name"] for p in prompts] == ["support/answer", "support/summarize"]
            runs = eval_store.list_experiments(conn, pid)
            assert {r["status"] for r in runs} == {"completed"}
            assert len(runs) == 2
        password = result.output.split("with password ")[1].split(" ")[0]
        with TestClient(create_app(runtime)) as client:
            sign_in(client, ADMIN_EMAIL, password)
            home = client.get(f"/projects/{pid}?range=24h")
            assert "No traces in the last" not in home.text
            assert "gpt-4o-mini" in home.text
            assert "support_bot" in client.get(f"/projects/{pid}/traces").text
            diff = client.get(f"/projects/{pid}/prompts/support/answer/diff")
            assert "no guessing" in client.get(f"/projects/{pid}/prompts/support/answer").text
            assert diff.status_code == 200
            base, other = sorted(r["id"] for r in runs)
            compare = client.get(
                f"/projects/{pid}/experiments/compare?baseline={base}&candidate={other}"
            )
            assert compare.status_code == 200
            assert "canada" in compare.text
            review = client.get(f"/projects/{pid}/annotations")
            assert "support answers" in review.text and "0 of 12 done" in review.text
    finally:
        runtime.db.close()
