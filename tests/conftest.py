"""Shared fixtures: every storage test runs on SQLite and on the live PostgreSQL.

PostgreSQL: one database per test run (``ph_test_<random>``), one schema per test, dropped at
the end. Redis: the live server at 127.0.0.1:6379, keys under a per-test prefix. When CI=true
and a service is unreachable, the test fails instead of skipping.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn
from starlette.testclient import TestClient

from pilothouse.app import HotPaths, create_app
from pilothouse.runtime import Runtime
from pilothouse.settings import Settings, load_settings

PG_ADMIN_URL = os.environ.get(
    "PILOTHOUSE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("PILOTHOUSE_TEST_REDIS", "redis://127.0.0.1:6379/0")
ADMIN_KEY = "ph-test-admin-key-0123456789abcdef"
ADMIN_PASSWORD = "test-admin-password"
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(what: str, why: object) -> None:
    """Skip locally, fail in CI: a service the suite needs is missing."""
    message = f"{what} unreachable: {why}"
    if IN_CI:
        pytest.fail(f"CI=true requires {message}")
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped afterwards."""
    name = f"ph_test_{secrets.token_hex(4)}"
    try:
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001 - reported through unavailable()
        unavailable("PostgreSQL", exc)
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _pg_schema_url(base: str) -> Iterator[str]:
    schema = f"t_{secrets.token_hex(6)}"
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = sa.engine.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'pilothouse.db'}"
    else:
        yield from _pg_schema_url(request.getfixturevalue("pg_database"))


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The live Redis, flushed of this test's keys afterwards (tests use unique names)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - reported through unavailable()
        client.close()
        unavailable("Redis", exc)
    yield REDIS_URL
    client.close()


def make_settings(tmp_path: Path, database_url: str, **overrides: Any) -> Settings:
    """Settings for a test: no environment, data under tmp_path, a known admin."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "admin_key": ADMIN_KEY,
        "admin_password": ADMIN_PASSWORD,
        "workers_inline": False,
    }
    values.update(overrides)
    return load_settings(values, environ={})


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    """A migrated runtime with the first administrator created (key ``ADMIN_KEY``)."""
    rt = Runtime(settings)
    rt.migrate()
    rt.bootstrap()
    try:
        yield rt
    finally:
        rt.db.close()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    """An in-process client of the whole app, authenticated as the admin key."""
    with TestClient(
        create_app(runtime), headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveServer:
    """An ASGI app served by uvicorn on a real socket in a background thread."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Served as `pilothouse serve` serves it: the app's protocol, hot paths included.
        protocol = app.protocol() if isinstance(app, HotPaths) else "auto"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            http=protocol,
            log_level="warning",
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("live server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def live_server(runtime: Runtime) -> Iterator[LiveServer]:
    """The whole app on a real socket (for official clients such as ``openai``)."""
    with LiveServer(create_app(runtime)) as server:
        yield server
