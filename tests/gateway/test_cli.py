"""``pilothouse gateway check``: validates the config and never prints credentials."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from pilothouse.cli import cli


def test_check_lists_models_without_secrets(tmp_path: Path) -> None:
    path = tmp_path / "pilothouse.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "models": {
                    "gpt": {
                        "deployments": [
                            {
                                "provider": "openai",
                                "model": "gpt-4o",
                                "api_key": "sk-literal-secret",
                            }
                        ],
                        "fallbacks": ["echo"],
                    },
                    "echo": {"deployments": [{"provider": "mock", "model": "echo"}]},
                }
            }
        )
    )
    runner = CliRunner()
    result = runner.invoke(cli, ["gateway", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "gpt: gpt#0 -> openai:gpt-4o (fallbacks: echo)" in result.output
    as_json = runner.invoke(cli, ["gateway", "check", str(path), "--json"])
    doc = json.loads(as_json.output)
    assert doc["models"]["gpt"]["deployments"][0]["api_key"] == "********"
    assert "sk-literal-secret" not in result.output + as_json.output


def test_check_names_the_bad_field(tmp_path: Path) -> None:
    path = tmp_path / "pilothouse.yaml"
    path.write_text("models: {gpt: {deployments: [{provider: openai, model: m, weight: heavy}]}}")
    result = CliRunner().invoke(cli, ["gateway", "check", str(path)])
    assert result.exit_code != 0
    assert "models.gpt.deployments[0].weight: expected a number" in result.output


def test_check_without_a_file_shows_the_builtin_models() -> None:
    result = CliRunner().invoke(cli, ["gateway", "check"], env={"PILOTHOUSE_GATEWAY_CONFIG": ""})
    assert result.exit_code == 0, result.output
    assert "mock/echo" in result.output
