"""Administration commands mirror the API: projects, keys, users, jobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pilothouse.cli import cli
from pilothouse.identity.keys import KeyRing
from pilothouse.identity.passwords import verify_password
from pilothouse.store import Database
from pilothouse.store import identity as store


@pytest.fixture
def run(tmp_path: Path, database_url: str):
    """Run ``pilothouse <args>`` against this test's database; returns the output."""

    def invoke(*args: str, ok: bool = True) -> str:
        result = CliRunner().invoke(
            cli, ["--database-url", database_url, "--data-dir", str(tmp_path / "data"), *args]
        )
        assert (result.exit_code == 0) is ok, result.output
        assert "Traceback" not in result.output
        return result.output

    return invoke


def _json(output: str) -> Any:
    return json.loads(output)


def test_projects(run):
    created = _json(run("projects", "create", "chatbot", "--retention-days", "7", "--json"))
    assert created["name"] == "chatbot" and created["retention_days"] == 7
    assert "Created project other" in run("projects", "create", "other", "--org", "acme")
    names = {p["name"]: p["org_id"] for p in _json(run("projects", "list", "--json"))}
    assert names["chatbot"] != names["other"]
    assert "chatbot" in run("projects", "list")
    duplicate = run("projects", "create", "chatbot", ok=False)
    assert duplicate.strip() == "Error: project 'chatbot' already exists in organization 1"


def test_keys(run, database_url: str):
    run("projects", "create", "app")
    created = _json(run("keys", "create", "--project", "app", "--scope", "gateway", "--json"))
    key = created["key"]
    assert created["scopes"] == ["gateway"] and "key_hash" not in created
    db = Database(database_url)
    try:
        assert KeyRing(db).verify(key, "gateway").project_id == created["project_id"]
        listed = run("keys", "list", "--project", str(created["project_id"]))
        assert key[:10] in listed and key not in listed and "active" in listed
        assert run("keys", "revoke", str(created["id"])).strip() == f"Revoked key {created['id']}."
        assert "revoked" in run("keys", "list", "--project", "app")
        assert KeyRing(db).lookup(key) is None
    finally:
        db.close()
    plain = run("keys", "create", "--project", "app", "--scope", "read", "--expires-in-days", "3")
    assert plain.strip().startswith("ph-")
    assert "Error: project 'nope' not found" in run(
        "keys", "create", "--project", "nope", "--scope", "read", ok=False
    )
    assert "Invalid value" in run("keys", "create", "--project", "app", "--scope", "x", ok=False)
    assert "Error: project '²' not found" in run("keys", "list", "--project", "²", ok=False)


def test_users(run, database_url: str):
    run("projects", "create", "app")
    generated = _json(run("users", "create", "a@example.com", "--json"))
    assert len(generated["password"]) >= 20 and "password_hash" not in generated
    chosen = run(
        "users",
        "create",
        "b@example.com",
        "--password",
        "b-password",
        "--project",
        "app",
        "--role",
        "viewer",
    )
    assert "password" not in chosen
    assert "at least 8" in run("users", "create", "c@example.com", "--password", "x", ok=False)
    assert run("users", "grant", "a@example.com", "--project", "app", "--role", "admin")
    assert "no user" in run(
        "users", "grant", "z@example.com", "--project", "app", "--role", "admin", ok=False
    )
    assert {u["email"] for u in _json(run("users", "list", "--json"))} == {
        "a@example.com",
        "b@example.com",
    }
    db = Database(database_url)
    try:
        with db.read() as conn:
            b = store.user_by_email(conn, "b@example.com")
            assert b is not None and verify_password(b["password_hash"], "b-password")
            a = store.user_by_email(conn, "a@example.com")
            assert a is not None
            assert set(store.roles_of(conn, a["id"]).values()) == {"admin"}
            assert set(store.roles_of(conn, b["id"]).values()) == {"viewer"}
    finally:
        db.close()


def test_jobs(run):
    job_id = run("jobs", "enqueue", "ping", "--arg", "fail_times=0").strip()
    listed = _json(run("jobs", "list", "--json"))
    assert [(j["id"], j["status"]) for j in listed] == [(job_id, "queued")]
    assert job_id in run("jobs", "list", "--status", "queued")
    assert "is not KEY=VALUE" in run("jobs", "enqueue", "ping", "--arg", "oops", ok=False)
    assert "arguments do not fit" in run("jobs", "enqueue", "ping", "--arg", "x=1", ok=False)
    assert "no job named" in run("jobs", "enqueue", "nope", ok=False)


def test_help_of_every_command():
    def walk(command: Any, path: list[str]) -> None:
        result = CliRunner().invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(cli, [])
