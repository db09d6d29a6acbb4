"""End to end: dataset from JSONL, prompt v1 and v2 against a local fake model, compare, and
``pilothouse eval run`` exits 1 on a regression, 0 without one, 2 on a broken config."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner
from junitparser import Failure, JUnitXml

from pilothouse.cli import cli
from pilothouse.runtime import Runtime
from tests.evals.fakes import CAPITALS

SHORT = "Reply with the city name only."
SENTENCE = "Reply with a full sentence."


def _suite(tmp_path: Path, candidate_system: str) -> Path:
    data = tmp_path / "capitals.jsonl"
    data.write_text(
        "".join(
            json.dumps({"key": c, "input": {"country": c}, "expected": city}) + "\n"
            for c, city in CAPITALS.items()
        )
    )

    def prompt(system: str, label: str) -> dict[str, object]:
        return {
            "name": "qa",
            "type": "chat",
            "labels": [label],
            "template": [
                {"role": "system", "content": system},
                {"role": "user", "content": "What is the capital of {{country}}?"},
            ],
        }

    config = {
        "dataset": {"name": "capitals", "file": data.name},
        "prompts": [prompt(SHORT, "baseline"), prompt(candidate_system, "candidate")],
        "targets": [
            {"name": "A", "type": "prompt", "prompt": "qa", "label": "baseline", "model": "fake"},
            {"name": "B", "type": "prompt", "prompt": "qa", "label": "candidate", "model": "fake"},
        ],
        "evaluators": ["equals", {"type": "icontains"}],
        "config": {"concurrency": 4},
        "thresholds": [
            {"evaluator": "icontains", "min_pass_rate": 0.9},
            {"evaluator": "equals", "target": "B", "no_regression_vs": "A"},
        ],
    }
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run(database_url: str, gateway_file: Path, *args: str):
    return CliRunner().invoke(
        cli,
        ["--database-url", database_url, "eval", "run", "--quiet", *args],
        env={"PILOTHOUSE_GATEWAY_CONFIG": str(gateway_file)},
    )


def test_regression_fails_the_gate_and_its_absence_passes(
    eval_runtime: Runtime, database_url: str, gateway_file: Path, tmp_path: Path
):
    worse = _suite(tmp_path, SENTENCE)
    junit, summary, out = tmp_path / "junit.xml", tmp_path / "summary.md", tmp_path / "out.json"
    failed = _run(
        database_url, gateway_file, str(worse), "--junit", str(junit),
        "--summary", str(summary), "--json", str(out),
    )  # fmt: skip
    assert failed.exit_code == 1, failed.output
    result = json.loads(out.read_text())
    comparison = result["comparisons"]["B vs A"]["evaluators"]
    assert comparison["equals"]["losses"] == 10 and comparison["equals"]["wins"] == 0
    assert (
        comparison["equals"]["verdict"] == "regression" and comparison["equals"]["p_value"] < 0.05
    )
    assert comparison["icontains"]["ties"] == 10
    assert comparison["icontains"]["verdict"] == "no significant difference"
    assert result["summaries"]["A"]["evaluators"]["equals"]["mean"] == 1.0
    assert result["summaries"]["B"]["evaluators"]["equals"]["mean"] == 0.0
    xml = JUnitXml.fromfile(str(junit))
    suites = {suite.name: suite for suite in xml}
    assert set(suites) == {"A", "B"}
    assert suites["A"].tests == 1 and suites["A"].failures == 0
    assert suites["B"].tests == 2 and suites["B"].failures == 1
    failing = [case for case in suites["B"] if any(isinstance(r, Failure) for r in case.result)]
    assert [case.name for case in failing] == ["equals no significant regression vs A"]
    markdown = summary.read_text()
    assert markdown.startswith("## Evaluation failed")
    assert "| equals | 0 | 10 | 0 | -1.000 |" in markdown

    same = _suite(tmp_path, SHORT + " Be brief.")
    passed = _run(database_url, gateway_file, str(same), "--junit", str(junit))
    assert passed.exit_code == 0, passed.output
    assert "## Evaluation passed" in passed.output
    xml = JUnitXml.fromfile(str(junit))
    assert sum(suite.failures for suite in xml) == 0 and sum(suite.tests for suite in xml) == 3


def test_config_errors_exit_2(
    eval_runtime: Runtime, database_url: str, gateway_file: Path, tmp_path: Path
):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"dataset": "x", "targets": [{"name": "A", "type": "nope"}]}))
    result = _run(database_url, gateway_file, str(bad))
    assert result.exit_code == 2 and "targets[0]: target.type" in result.output
    missing = tmp_path / "missing.yaml"
    missing.write_text(
        yaml.safe_dump(
            {
                "dataset": "never-pushed",
                "targets": [{"name": "A", "model": "fake"}],
                "evaluators": ["equals"],
            }
        )
    )
    result = _run(database_url, gateway_file, str(missing))
    assert result.exit_code == 2, result.output
    assert _run(database_url, gateway_file, str(tmp_path / "absent.yaml")).exit_code == 2
    unreachable = tmp_path / "unreachable.yaml"
    (tmp_path / "one.jsonl").write_text('{"input": "hi", "expected": "hi"}\n')
    unreachable.write_text(
        yaml.safe_dump(
            {
                "dataset": {"name": "one", "file": "one.jsonl"},
                "targets": [{"name": "A", "model": "no-such-model"}],
                "evaluators": ["equals"],
                "config": {"retries": 0},
            }
        )
    )
    result = _run(database_url, gateway_file, str(unreachable))
    assert result.exit_code == 2, result.output
    assert "target 'A' failed on every item: NotFound" in result.output


def test_ephemeral_store_runs_without_a_server_or_database(tmp_path: Path, gateway_file: Path):
    config = tmp_path / "eval.yaml"
    (tmp_path / "d.jsonl").write_text('{"input": "hello", "expected": "hello"}\n')
    config.write_text(
        yaml.safe_dump(
            {
                "dataset": {"name": "d", "file": "d.jsonl"},
                "targets": [{"name": "echo", "model": "mock/echo"}],
                "evaluators": ["equals"],
                "thresholds": [{"evaluator": "equals", "min_mean": 1}],
            }
        )
    )
    result = CliRunner().invoke(
        cli, ["eval", "run", "--ephemeral", "--quiet", str(config), "--json", "-"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["passed"] is True
