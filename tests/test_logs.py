"""Structured logs: one JSON object per line with log_format=json."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from pilothouse import logs


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines(restore_logging: None, capsys: pytest.CaptureFixture[str]):
    config = logs.configure("info", "json")
    assert config["formatters"]["default"] == {"()": "pilothouse.logs.JSONFormatter"}
    log = logging.getLogger("pilothouse.test")
    log.info("started on port %d", 4141)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("it failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["message"] == "started on port 4141"
    assert lines[0]["level"] == "info" and lines[0]["logger"] == "pilothouse.test"
    assert lines[0]["time"].endswith("+00:00")
    assert lines[1]["level"] == "error" and "ValueError: boom" in lines[1]["exception"]


def test_text_by_default(restore_logging: None, capsys: pytest.CaptureFixture[str]):
    logs.configure("warning", "text")
    logging.getLogger("pilothouse.test").info("hidden")
    logging.getLogger("pilothouse.test").warning("shown")
    err = capsys.readouterr().err
    assert "hidden" not in err and "WARNING pilothouse.test: shown" in err
