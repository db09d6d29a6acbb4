"""The ASGI app: management API, plugin routes, body limit and lifespan, in one."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from pilothouse import hookimpl
from pilothouse.api.bodylimit import BodyLimit
from pilothouse.app import HotPaths, create_app
from pilothouse.plugins import make_plugin_manager
from pilothouse.runtime import Runtime
from tests.conftest import LiveServer, make_settings


def test_app_is_wrapped_in_the_body_limit(runtime: Runtime):
    app = create_app(runtime)
    assert isinstance(app, HotPaths) and isinstance(app.app, BodyLimit)
    assert app.app.max_bytes == app.max_body_bytes == runtime.settings.max_body_bytes
    assert "/v1/chat/completions" in app.paths  # the gateway's, served on the short road
    assert app.protocol().hot[b"/v1/chat/completions"] is app.paths["/v1/chat/completions"]


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


def test_in_flight_requests_finish_on_shutdown(tmp_path: Path, database_url: str):
    arrived, release = threading.Event(), threading.Event()

    async def slow(request: Any) -> PlainTextResponse:
        arrived.set()
        await run_in_threadpool(release.wait, 30)
        return PlainTextResponse("finished")

    stopped: list[str] = []

    @hookimpl
    def asgi_routes(runtime: Runtime) -> list[Any]:
        return [Route("/slow", slow)]

    @hookimpl
    def shutdown(runtime: Runtime) -> None:
        stopped.append("flushed")

    pm = make_plugin_manager(load_entry_points=False)
    pm.register(SimpleNamespace(asgi_routes=asgi_routes, shutdown=shutdown), name="slow")
    runtime = Runtime(make_settings(tmp_path, database_url), plugins=pm)
    runtime.migrate()
    server = LiveServer(create_app(runtime)).__enter__()
    answers: list[httpx.Response] = []
    client = threading.Thread(
        target=lambda: answers.append(httpx.get(server.url + "/slow", timeout=60))
    )
    client.start()
    assert arrived.wait(30)

    server.server.should_exit = True  # what SIGTERM does
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until the server stops accepting connections
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", server.port)) != 0:
                break
    assert not stopped  # still serving the request in flight
    release.set()
    client.join(60)
    server.thread.join(60)
    assert [(a.status_code, a.text) for a in answers] == [(200, "finished")]
    assert stopped == ["flushed"]
