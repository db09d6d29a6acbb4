"""Users: superusers manage everyone; others see and edit only themselves."""

from __future__ import annotations

import sqlalchemy as sa
from starlette.testclient import TestClient

from pilothouse.runtime import Runtime
from pilothouse.store import identity as store
from tests.api.helpers import SUPERUSER, basic, make_user, walk


def test_superuser_creates_users_without_storing_the_password(client: TestClient, runtime: Runtime):
    user = make_user(client, "Alice@Example.com", password="s3cret-password")
    assert user["email"] == "alice@example.com"
    assert "password" not in user and "password_hash" not in user
    assert user["is_superuser"] is False and user["is_active"] is True

    with runtime.db.read() as conn:
        stored = conn.execute(sa.select(store.users).where(store.users.c.id == user["id"])).one()
    assert stored.password_hash.startswith("$argon2id$")
    assert "s3cret-password" not in str(tuple(stored))

    duplicate = client.post(
        "/api/users",
        json={"email": "alice@example.com", "name": "A", "password": "another-one"},
        headers=SUPERUSER,
    )
    assert duplicate.status_code == 409


def test_non_superusers_cannot_manage_users(client: TestClient):
    body = {"email": "x@example.com", "name": "x", "password": "password-123"}
    assert client.post("/api/users", json=body).status_code == 403  # the admin key
    assert client.get("/api/users").status_code == 403
    make_user(client, "bob@example.com")
    bob = basic("bob@example.com", "password-123")
    assert client.post("/api/users", json=body, headers=bob).status_code == 403
    assert client.get("/api/users/1", headers=bob).status_code == 403


def test_users_see_and_edit_themselves(client: TestClient):
    bob_id = make_user(client, "bob@example.com")["id"]
    bob = basic("bob@example.com", "password-123")
    me = client.get("/api/me", headers=bob).json()
    assert me == {
        "kind": "user",
        "id": bob_id,
        "name": "bob@example.com",
        "is_superuser": False,
        "project_id": None,
        "scopes": {},
        "admin_orgs": [],
    }
    assert client.get(f"/api/users/{bob_id}", headers=bob).json()["email"] == "bob@example.com"

    renamed = client.patch(f"/api/users/{bob_id}", json={"name": "Robert"}, headers=bob)
    assert renamed.status_code == 200 and renamed.json()["name"] == "Robert"
    promote = client.patch(f"/api/users/{bob_id}", json={"is_superuser": True}, headers=bob)
    assert promote.status_code == 403

    changed = client.patch(f"/api/users/{bob_id}", json={"password": "new-password"}, headers=bob)
    assert changed.status_code == 200
    assert client.get("/api/me", headers=bob).status_code == 401
    assert client.get("/api/me", headers=basic("bob@example.com", "new-password")).is_success


def test_deactivated_user_cannot_sign_in(client: TestClient):
    uid = make_user(client, "gone@example.com")["id"]
    assert client.patch(
        f"/api/users/{uid}", json={"is_active": False}, headers=SUPERUSER
    ).is_success
    response = client.get("/api/me", headers=basic("gone@example.com", "password-123"))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"


def test_me_for_an_api_key(client: TestClient):
    me = client.get("/api/me").json()
    assert me["kind"] == "key" and me["project_id"] == 1 and me["admin_orgs"] == [1]
    assert me["scopes"] == {"1": ["admin", "gateway", "ingest", "read", "write"]}


def test_missing_and_wrong_credentials(client: TestClient):
    missing = client.get("/api/me", headers={"Authorization": ""})
    assert missing.status_code == 401 and missing.json()["code"] == "missing_credentials"
    wrong = client.get("/api/me", headers=basic("admin@localhost", "wrong"))
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_credentials"


def test_users_pagination(client: TestClient):
    for i in range(7):
        make_user(client, f"u{i}@example.com")
    client.headers.update(SUPERUSER)
    emails = [u["email"] for u in walk(client, "/api/users", 3)]
    assert emails == ["admin@localhost"] + [f"u{i}@example.com" for i in range(7)]
