"""``pilothouse serve`` end to end: a real process, as a user starts it."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import PG_ADMIN_URL, free_port, unavailable


class Served:
    """``pilothouse serve`` in a subprocess, in ``cwd``, with only ``env`` set."""

    def __init__(
        self, cwd: Path, env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"serve-{self.port}.log"
        base = {"PATH": os.environ["PATH"], "HOME": str(cwd)}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pilothouse", "serve", "--port", str(self.port)]
                + (args or []),
                cwd=cwd,
                env=base | (env or {}),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text()

    def wait_ready(self, timeout: float = 60, status: int = 200) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited early:\n{self.output()}")
            try:
                response = httpx.get(self.url + "/readyz", timeout=2)
                if response.status_code == status:
                    return response
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"not ready after {timeout}s:\n{self.output()}")

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        finally:
            self.process.kill()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[type[Served]]:
    started: list[Served] = []

    def start(
        cwd: Path = tmp_path, env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> Served:
        server = Served(cwd, env, args)
        started.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in started:
        server.process.kill()
        server.process.wait()


def _admin_key(output: str) -> str:
    found = re.findall(r"admin API key: (ph-\S+)", output)
    assert len(found) == 1, output
    return str(found[0])


def _check_server(server: Served, key: str) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    projects = httpx.get(server.url + "/api/projects", headers=auth).json()["data"]
    assert [p["name"] for p in projects] == ["default"]
    assert httpx.get(server.url + "/api/projects").status_code == 401
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}


def test_serve_with_no_configuration(serve, tmp_path: Path):
    server = serve()
    ready = server.wait_ready()
    assert ready.json()["checks"] == {"database": "ok", "migrations": "ok"}
    assert (tmp_path / ".pilothouse" / "pilothouse.db").is_file()

    output = server.output()
    key = _admin_key(output)
    assert re.search(r"password: \S{20,}", output)
    assert "(shown only this once)" in output
    _check_server(server, key)

    assert server.terminate() == 0
    assert "shutdown complete" in server.output().lower()

    again = serve()
    again.wait_ready()
    _check_server(again, key)
    assert again.terminate() == 0
    assert "admin API key" not in again.output() and "password:" not in again.output()


def test_serve_takes_credentials_from_the_environment(serve):
    key = "ph-chosen-" + secrets.token_hex(16)
    server = serve(env={"PILOTHOUSE_ADMIN_KEY": key, "PILOTHOUSE_ADMIN_PASSWORD": "chosen-pass"})
    server.wait_ready()
    _check_server(server, key)
    me = httpx.get(server.url + "/api/me", auth=("admin@localhost", "chosen-pass")).json()
    assert me["is_superuser"] is True
    assert key not in server.output() and "chosen-pass" not in server.output()
    assert server.terminate() == 0


def test_serve_no_migrate_is_not_ready_until_upgraded(serve, tmp_path: Path):
    server = serve(args=["--no-migrate"])
    pending = server.wait_ready(status=503)
    assert pending.json()["checks"] == {"database": "ok", "migrations": "pending"}
    assert "pilothouse db upgrade" in server.output()
    upgrade = subprocess.run(
        [sys.executable, "-m", "pilothouse", "db", "upgrade"],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    server.wait_ready()
    assert server.terminate() == 0


@pytest.mark.postgres
def test_serve_on_postgresql(serve, tmp_path: Path):
    name = f"ph_serve_{secrets.token_hex(4)}"
    try:
        admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001 - reported through unavailable()
        unavailable("PostgreSQL", exc)
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name)
    try:
        env = {"PILOTHOUSE_DATABASE_URL": url.render_as_string(hide_password=False)}
        server = serve(env=env)
        server.wait_ready()
        key = _admin_key(server.output())
        assert "database: postgresql" in server.output()
        _check_server(server, key)
        assert not (tmp_path / ".pilothouse" / "pilothouse.db").exists()
        assert server.terminate() == 0
        assert "shutdown complete" in server.output().lower()

        again = serve(env=env)
        again.wait_ready()
        _check_server(again, key)
        assert again.terminate() == 0
        assert "admin API key" not in again.output()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _listeners(port: int) -> set[int]:
    """The pids holding a listening TCP socket on ``port`` (from /proc)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            inodes.add(f"socket:[{fields[9]}]")
    pids = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) in inodes for fd in fd_dir.iterdir()):
                pids.add(int(fd_dir.parent.name))
        except OSError:  # a process that ended, or not ours to read
            continue
    return pids


def test_serve_with_several_processes_on_one_port(serve):
    key = "ph-procs-" + secrets.token_hex(16)
    server = serve(env={"PILOTHOUSE_ADMIN_KEY": key}, args=["--server-processes", "2"])
    server.wait_ready()
    assert "2 processes" in server.output()
    deadline = time.monotonic() + 60  # ready once the first listens; the other follows
    while len(listeners := _listeners(server.port)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(listeners) == 2 and server.process.pid not in listeners  # one socket each
    for _ in range(20):  # a new connection each: the kernel picks a process
        _check_server(server, key)
    assert server.terminate() == 0
    assert server.output().lower().count("shutdown complete") == 2
    assert not any(Path(f"/proc/{pid}").exists() for pid in listeners)
