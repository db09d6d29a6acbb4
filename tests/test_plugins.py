"""Plugins: built-ins load through DEFAULT_PLUGINS; a third-party plugin adds jobs, commands
and routes through the same hooks."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
from click.testing import CliRunner
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from pilothouse import hookimpl
from pilothouse.app import create_app
from pilothouse.jobs import JobSpec
from pilothouse.plugins import DEFAULT_PLUGINS, make_plugin_manager
from pilothouse.runtime import Runtime
from tests.conftest import make_settings


def test_built_in_plugins_are_registered():
    pm = make_plugin_manager(load_entry_points=False)
    assert [name for name in DEFAULT_PLUGINS if pm.get_plugin(name) is None] == []
    assert DEFAULT_PLUGINS[0] == "pilothouse.jobs.builtin"


def _third_party() -> Any:
    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hello from a plugin")

    def nightly(context: Any) -> None:
        return None

    @hookimpl
    def register_jobs(register: Any) -> None:
        register(JobSpec(name="nightly", func=nightly, schedule="0 3 * * *"))

    @hookimpl
    def asgi_routes(runtime: Runtime) -> list[Any]:
        return [Route("/hello", hello)]

    @hookimpl
    def register_commands(cli: click.Group) -> None:
        @cli.command()
        def greet() -> None:
            """Say hello."""
            click.echo("hello")

    return SimpleNamespace(
        register_jobs=register_jobs, asgi_routes=asgi_routes, register_commands=register_commands
    )


def test_third_party_plugin_adds_jobs_routes_and_commands(tmp_path: Path, database_url: str):
    pm = make_plugin_manager(load_entry_points=False)
    pm.register(_third_party(), name="third_party")
    runtime = Runtime(make_settings(tmp_path, database_url), plugins=pm)
    try:
        assert {"ping", "nightly"} <= set(runtime.jobs.specs)
        runtime.migrate()
        with TestClient(create_app(runtime)) as client:
            assert client.get("/hello").text == "hello from a plugin"
            assert client.get("/healthz").status_code == 200
    finally:
        runtime.db.close()

    group = click.Group("pilothouse")
    pm.hook.register_commands(cli=group)
    assert CliRunner().invoke(group, ["greet"]).output == "hello\n"
