"""The ASGI app: management API, plugin routes, body limit and lifespan, in one."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from pilothouse.api.bodylimit import BodyLimit
from pilothouse.app import create_app
from pilothouse.runtime import Runtime
from tests.conftest import make_settings


def test_app_is_wrapped_in_the_body_limit(runtime: Runtime):
    app = create_app(runtime)
    assert isinstance(app, BodyLimit)
    assert app.max_bytes == runtime.settings.max_body_bytes


def test_openapi_document_describes_problems(client: TestClient):
    document = client.get("/api/openapi.json").json()
    assert document["info"]["title"] == "Pilothouse"
    assert "Problem" in document["components"]["schemas"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "4XX" in responses, (method, path)
            assert "application/problem+json" in responses["4XX"]["content"]
    assert client.get("/api/docs").status_code == 200


def test_lifespan_starts_and_stops_the_runtime(tmp_path: Path, database_url: str):
    runtime = Runtime(make_settings(tmp_path, database_url, workers_inline=True))
    runtime.migrate()
    with TestClient(create_app(runtime)) as client:
        assert runtime.jobs._consumer is not None
        assert client.get("/healthz").json() == {"status": "ok"}
    assert runtime.jobs._consumer is None
