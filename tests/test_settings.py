"""The settings registry: environment parsing, precedence and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pilothouse.cli import cli
from pilothouse.errors import ConfigError
from pilothouse.settings import Settings, load_settings, registry, type_name


def test_defaults_without_environment():
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.port == 4141 and settings.host == "127.0.0.1"
    assert settings.effective_database_url == (
        f"sqlite:///{(Path('.pilothouse') / 'pilothouse.db').resolve()}"
    )


def test_environment_is_parsed_into_types():
    settings = load_settings(
        environ={
            "PILOTHOUSE_PORT": "8080",
            "PILOTHOUSE_MIGRATE": "off",
            "PILOTHOUSE_KEY_CACHE_TTL": "2.5",
            "PILOTHOUSE_DATA_DIR": "/tmp/somewhere",
            "PILOTHOUSE_LOG_FORMAT": "json",
            "PILOTHOUSE_REDIS_URL": "redis://127.0.0.1:6379/3",
        }
    )
    assert settings.port == 8080
    assert settings.migrate is False
    assert settings.key_cache_ttl == 2.5
    assert settings.data_dir == Path("/tmp/somewhere")
    assert settings.log_format == "json"
    assert settings.redis_url == "redis://127.0.0.1:6379/3"
    assert settings.effective_database_url == "sqlite:////tmp/somewhere/pilothouse.db"


@pytest.mark.parametrize("raw", ["1", "true", "YES", "on"])
def test_true_spellings(raw: str):
    assert load_settings(environ={"PILOTHOUSE_MIGRATE": raw}).migrate is True


def test_flags_beat_environment_beat_defaults():
    env = {"PILOTHOUSE_PORT": "5000", "PILOTHOUSE_HOST": "0.0.0.0"}
    settings = load_settings({"port": "6000", "host": None}, environ=env)
    assert settings.port == 6000  # flag over environment
    assert settings.host == "0.0.0.0"  # environment when the flag is not given
    assert settings.log_level == "info"  # default when neither


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PILOTHOUSE_PORT": "abc"}, "PILOTHOUSE_PORT='abc' is invalid: expected an integer"),
        ({"PILOTHOUSE_PORT": "70000"}, "PILOTHOUSE_PORT=70000 is invalid: expected 0-65535"),
        ({"PILOTHOUSE_PORT": "-1"}, "PILOTHOUSE_PORT='-1' is invalid: expected a value >= 0"),
        ({"PILOTHOUSE_MIGRATE": "maybe"}, "PILOTHOUSE_MIGRATE='maybe' is invalid: expected true"),
        ({"PILOTHOUSE_KEY_CACHE_TTL": "soon"}, "expected a number"),
        ({"PILOTHOUSE_LOG_FORMAT": "xml"}, "expected one of text, json"),
        ({"PILOTHOUSE_DATABASE_URL": "mysql://x/y"}, "PILOTHOUSE_DATABASE_URL='mysql://x/y'"),
        ({"PILOTHOUSE_REDIS_URL": "localhost:6379"}, "expected redis://host:port/db"),
    ],
)
def test_invalid_values_name_the_setting_and_the_expected_form(env: dict[str, str], message: str):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=env)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text


def test_registry_describes_every_field():
    infos = registry()
    assert [i.name for i in infos] == list(Settings.__dataclass_fields__)
    for info in infos:
        assert info.help and info.env.startswith("PILOTHOUSE_") and type_name(info)
        assert info.flag == "--" + info.name.replace("_", "-")


def test_public_masks_secrets():
    shown = load_settings({"admin_key": "ph-secret", "admin_password": ""}, environ={}).public()
    assert shown["admin_key"] == "********"
    assert shown["admin_password"] == ""


def test_serve_with_a_bad_value_prints_one_line_and_fails(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PILOTHOUSE_PORT", "not-a-port")
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code != 0
    assert result.output.strip() == (
        "Error: PILOTHOUSE_PORT='not-a-port' is invalid: expected an integer"
    )
    assert "Traceback" not in result.output


def test_serve_flag_is_checked_like_the_environment():
    result = CliRunner().invoke(cli, ["serve", "--log-level", "loud"])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "loud" in result.output


def test_settings_command_lists_every_setting(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PILOTHOUSE_ADMIN_KEY", "ph-do-not-show")
    result = CliRunner().invoke(cli, ["settings"])
    assert result.exit_code == 0, result.output
    for info in registry():
        assert info.env in result.output
    assert "ph-do-not-show" not in result.output
