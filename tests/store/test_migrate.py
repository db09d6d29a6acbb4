"""Migrations: every branch upgrades on both backends to exactly the declared schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from starlette.testclient import TestClient

from pilothouse.app import create_app
from pilothouse.cli import cli
from pilothouse.runtime import Runtime
from pilothouse.settings import Settings
from pilothouse.store import Database, migrate
from pilothouse.store.engine import SQLITE_BUSY_TIMEOUT_MS
from pilothouse.store.tables import metadata


def test_upgrade_reaches_every_head(database_url: str):
    db = Database(database_url)
    try:
        assert migrate.current(db) == set()
        assert not migrate.is_current(db)
        migrate.upgrade(db)
        assert migrate.applied(db) == {r.revision for r in migrate.history()}
        assert migrate.current(db) <= migrate.heads()
        assert migrate.is_current(db)
        migrate.upgrade(db)  # a second run has nothing to do
        assert migrate.is_current(db)
    finally:
        db.close()


def test_migrated_schema_matches_the_table_definitions(database_url: str):
    """Every area's migrations create exactly what ``store.tables.metadata`` declares."""
    db = Database(database_url)
    try:
        migrate.upgrade(db)
        with db.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": False}
            )
            diffs = compare_metadata(context, metadata)
    finally:
        db.close()
    assert diffs == [], "migrations and store/ tables disagree:\n" + "\n".join(map(str, diffs))


def test_every_migration_is_listed_with_its_branch():
    revisions = migrate.history()
    assert {r.revision for r in revisions} >= {"core_0001"}
    for r in revisions:
        assert r.branch, f"{r.revision} has no branch label"
        if r.down_revision is None:
            assert r.revision.endswith("_0001"), r.revision
    assert len({r.revision for r in revisions}) == len(revisions)


def test_sqlite_pragmas(tmp_path: Path):
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
    finally:
        db.close()


def test_foreign_keys_are_enforced(database_url: str):
    db = Database(database_url)
    try:
        migrate.upgrade(db)
        from pilothouse.store import identity

        with pytest.raises(sa.exc.IntegrityError), db.write() as conn:
            conn.execute(
                identity.memberships.insert().values(
                    project_id=999, user_id=999, role="viewer", created_at=sa.func.now()
                )
            )
    finally:
        db.close()


def _invoke(database_url: str, tmp_path: Path, *args: str) -> str:
    result = CliRunner().invoke(
        cli,
        ["--database-url", database_url, "--data-dir", str(tmp_path / "data"), "db", *args],
        env={},
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_db_commands(database_url: str, tmp_path: Path):
    before = json.loads(_invoke(database_url, tmp_path, "current", "--json"))
    assert before == {"current": [], "pending": True}
    assert "(empty database) (migrations pending)" in _invoke(database_url, tmp_path, "current")

    assert "Upgraded to" in _invoke(database_url, tmp_path, "upgrade")
    assert _invoke(database_url, tmp_path, "upgrade").strip() == "Already up to date."

    after = json.loads(_invoke(database_url, tmp_path, "current", "--json"))
    assert after["pending"] is False and set(after["current"]) <= migrate.heads()
    assert "(head)" in _invoke(database_url, tmp_path, "current")

    history = _invoke(database_url, tmp_path, "history")
    assert "<base> -> core_0001 [core]" in history
    listed = json.loads(_invoke(database_url, tmp_path, "history", "--json"))
    assert {r["revision"] for r in listed} == {r.revision for r in migrate.history()}


def test_readyz_is_503_until_migrated(database_url: str, tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, migrate=False)
    runtime = Runtime(settings)
    try:
        with TestClient(create_app(runtime)) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            pending = client.get("/readyz")
            assert pending.status_code == 503
            assert pending.json()["checks"] == {"database": "ok", "migrations": "pending"}
            assert pending.headers["retry-after"] == "5"

            runtime.migrate()
            ready = client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {
                "status": "ok",
                "checks": {"database": "ok", "migrations": "ok"},
            }
    finally:
        runtime.db.close()


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: Path):
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1",
    )
    runtime = Runtime(settings)
    try:
        with TestClient(create_app(runtime)) as client:
            response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["database"].startswith("error: ")
    finally:
        runtime.db.close()
