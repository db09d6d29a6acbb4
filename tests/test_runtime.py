"""The runtime: first-start bootstrap, start and stop."""

from __future__ import annotations

from pathlib import Path

from pilothouse.identity.passwords import verify_password
from pilothouse.runtime import Runtime
from pilothouse.store import identity as store
from tests.conftest import make_settings


def test_first_start_creates_the_admin_once(tmp_path: Path, database_url: str):
    settings = make_settings(tmp_path, database_url, admin_key="", admin_password="")
    runtime = Runtime(settings)
    try:
        runtime.migrate()
        first = runtime.bootstrap()
        assert first is not None and first.email == "admin@localhost"
        assert first.password and first.key and first.key.startswith("ph-")
        key = runtime.keys.verify(first.key, "admin")
        assert key.project_id == 1 and key.scopes == {"admin", "gateway", "ingest", "read", "write"}
        with runtime.db.read() as conn:
            user = store.user_by_email(conn, "admin@localhost")
            assert user is not None and user["is_superuser"]
            assert verify_password(user["password_hash"], first.password)
            assert store.roles_of(conn, user["id"]) == {1: "owner"}
            assert store.get_project(conn, 1)["name"] == "default"
        assert runtime.bootstrap() is None  # nothing printed on later starts
    finally:
        runtime.db.close()


def test_chosen_credentials_are_not_echoed(tmp_path: Path, database_url: str):
    runtime = Runtime(make_settings(tmp_path, database_url))
    try:
        runtime.migrate()
        first = runtime.bootstrap()
        assert first is not None and first.password is None and first.key is None
    finally:
        runtime.db.close()


def test_start_and_stop_run_the_consumer_and_plugin_hooks(tmp_path: Path, database_url: str):
    calls: list[str] = []

    class Probe:
        from pilothouse import hookimpl

        @hookimpl
        def startup(self, runtime: Runtime) -> None:
            calls.append("startup")

        @hookimpl
        def shutdown(self, runtime: Runtime) -> None:
            calls.append(f"shutdown consumer={runtime.jobs._consumer is not None}")

    runtime = Runtime(make_settings(tmp_path, database_url, workers_inline=True))
    probe = Probe()
    runtime.plugins.register(probe)
    try:
        runtime.migrate()
        runtime.start()
        assert runtime.jobs._consumer is not None
        runtime.stop()
        assert runtime.jobs._consumer is None
    finally:
        runtime.plugins.unregister(probe)
    # plugins flush first, while the consumer still runs; the database closes last
    assert calls == ["startup", "shutdown consumer=True"]


def test_replicas_starting_together_create_one_administrator(tmp_path: Path, database_url: str):
    import threading

    settings = make_settings(tmp_path, database_url, admin_key="", admin_password="")
    runtimes = [Runtime(settings) for _ in range(3)]
    runtimes[0].migrate()
    results: list[object] = []
    barrier = threading.Barrier(len(runtimes))

    def start(runtime: Runtime) -> None:
        barrier.wait()
        try:
            results.append(runtime.bootstrap())
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            results.append(exc)

    threads = [threading.Thread(target=start, args=(rt,)) for rt in runtimes]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        created = [r for r in results if r is not None]
        assert len(results) == 3 and len(created) == 1, results
        with runtimes[0].db.read() as conn:
            assert store.count_users(conn) == 1
    finally:
        for rt in runtimes:
            rt.db.close()
