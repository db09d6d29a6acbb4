# ruff: noqa: E501
# mypy: disable-error-code="arg-type, call-overload, union-attr, dict-item, index, attr-defined, unused-ignore, assignment"
"""The gateway configuration: strict parsing with field paths, secrets, reload on change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from pilothouse.errors import ConfigError
from pilothouse.gateway.config import ConfigSource, builtin_config, load, parse

PROVIDERS = {"openai", "anthropic", "mock"}


def one(deployment: dict[str, object], **model: object) -> dict[str, object]:
    return {"models": {"gpt": {"deployments": [deployment], **model}}}


@pytest.mark.parametrize(
    ("doc", "path", "reason"),
    [
        ({"modelz": {}}, "(root).modelz", "unknown key"),
        ({"models": []}, "models", "expected a mapping"),
        ({"models": {"gpt": {}}}, "models.gpt.deployments", "required"),
        ({"models": {"gpt": {"deployments": []}}}, "models.gpt.deployments", "non-empty list"),
        (one({"provider": "openai"}), "models.gpt.deployments[0].model", "required"),
        (one({"provider": "nope", "model": "m"}), "models.gpt.deployments[0].provider", "unknown provider"),
        (one({"provider": "openai", "model": "m", "weight": "x"}), "models.gpt.deployments[0].weight", "expected a number"),
        (one({"provider": "openai", "model": "m", "timeouts": {"first_bite": 3}}), "models.gpt.deployments[0].timeouts.first_bite", "unknown key"),
        (one({"provider": "openai", "model": "m", "base_url": "ftp://x"}), "models.gpt.deployments[0].base_url", "http"),
        (one({"provider": "openai", "model": "m", "price": {"input": 1}}), "models.gpt.deployments[0].price.input", "unknown key"),
        (one({"provider": "openai", "model": "m"}, fallbacks=["ghost"]), "models.gpt.fallbacks[0]", "unknown model"),
        ({"router": {"retries": "many"}}, "router.retries", "expected a number"),
    ],
)  # fmt: skip
def test_errors_name_the_field(doc: object, path: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(doc, providers=PROVIDERS)
    assert caught.value.param == path
    assert reason in caught.value.detail


def test_full_example_and_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PH_TEST_OPENAI_KEY", "sk-secret-value")
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file\n")
    config = parse(
        {
            "models": {
                "gpt": {
                    "deployments": [
                        {
                            "provider": "openai",
                            "model": "gpt-4o",
                            "api_key": "env:PH_TEST_OPENAI_KEY",
                            "weight": 3,
                            "price": {"input_per_mtok": 2.5, "output_per_mtok": 10},
                            "timeouts": {"connect": 2, "first_byte": 90, "total": 300},
                        },
                        {
                            "id": "azure",
                            "provider": "openai",
                            "model": "gpt-4o",
                            "base_url": "https://example.test/openai/v1/",
                            "api_key": f"file:{key_file}",
                        },
                    ],
                    "fallbacks": "claude",
                },
                "claude": {"deployments": [{"provider": "anthropic", "model": "claude-x"}]},
            },
            "router": {"retries": 3, "breaker_cooldown": 10},
        },
        providers=PROVIDERS,
        environ=os.environ,
    )
    first, second = config.models["gpt"].deployments
    assert first.api_key == "sk-secret-value" and second.api_key == "sk-from-file"
    assert first.timeouts.first_byte == 90 and first.price == {
        "input_per_mtok": 2.5,
        "output_per_mtok": 10,
    }
    assert second.id == "azure" and second.base_url == "https://example.test/openai/v1"
    assert config.models["gpt"].fallbacks == ("claude",)
    assert config.router.retries == 3 and isinstance(config.router.retries, int)
    # Credentials never appear in what may be shown, nor in repr().
    for deployment in (first, second):
        shown = repr(deployment) + repr(deployment.public())
        assert "sk-secret-value" not in shown and "sk-from-file" not in shown
    assert first.public()["api_key"] == "env:PH_TEST_OPENAI_KEY"


def test_builtin_config_serves_the_mock_models() -> None:
    assert set(builtin_config().models) == {"mock/echo", "mock/lorem", "mock/embed"}


def test_load_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pilothouse.yaml"
    path.write_text("models: [unclosed")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load(path)
    path.write_text(yaml.safe_dump({"models": {"m": {"deployments": [{"provider": "mock"}]}}}))
    with pytest.raises(ConfigError, match=r"pilothouse.yaml: models.m.deployments\[0\].model"):
        load(path)


def test_reload_on_change_keeps_the_last_good_config(tmp_path: Path) -> None:
    path = tmp_path / "pilothouse.yaml"
    path.write_text(
        yaml.safe_dump({"models": {"a": {"deployments": [{"provider": "mock", "model": "echo"}]}}})
    )
    source = ConfigSource(path, PROVIDERS)
    assert list(source.get().models) == ["a"]
    path.write_text(
        yaml.safe_dump({"models": {"b": {"deployments": [{"provider": "mock", "model": "echo"}]}}})
    )
    assert source.reload_if_changed()
    assert list(source.get().models) == ["b"]
    path.write_text("models: {b: {deployments: [{provider: nope, model: x}]}}")
    assert not source.reload_if_changed()
    assert list(source.current.models) == ["b"]
    assert not source.reload_if_changed()  # unchanged file: no work
