from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pilothouse.runtime import Runtime
from tests.conftest import LiveServer, make_settings
from tests.evals.fakes import FakeModel, gateway_config


@pytest.fixture
def fake_model() -> Iterator[tuple[FakeModel, str]]:
    model = FakeModel()
    with LiveServer(model) as server:
        yield model, server.url


@pytest.fixture
def gateway_file(tmp_path: Path, fake_model: tuple[FakeModel, str]) -> Path:
    path = tmp_path / "pilothouse.yaml"
    path.write_text(gateway_config(fake_model[1]))
    return path


@pytest.fixture
def eval_runtime(tmp_path: Path, database_url: str, gateway_file: Path) -> Iterator[Runtime]:
    """A migrated runtime whose gateway serves the fake model as ``fake`` and ``judge``."""
    settings = make_settings(tmp_path, database_url, gateway_config=str(gateway_file))
    rt = Runtime(settings)
    rt.migrate()
    rt.bootstrap()
    try:
        yield rt
    finally:
        rt.traces.close()
        rt.db.close()
