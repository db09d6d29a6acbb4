"""API keys: shown once, stored hashed, revoked at once."""

from __future__ import annotations

import sqlalchemy as sa
from starlette.testclient import TestClient

from pilothouse.runtime import Runtime
from pilothouse.store.tables import metadata


def test_key_is_shown_once_and_never_stored_in_plaintext(client: TestClient, runtime: Runtime):
    created = client.post("/api/projects/1/keys", json={"name": "app", "scopes": ["gateway"]})
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert key.startswith("ph-") and len(key) > 40
    assert created.json()["prefix"] == key[:10]

    listed = client.get("/api/projects/1/keys").json()["data"]
    assert all("key" not in row and "key_hash" not in row for row in listed)

    with runtime.db.read() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                assert not any(key in str(value) for value in row), table.name


def test_revoked_key_stops_working_at_once(client: TestClient):
    created = client.post(
        "/api/projects/1/keys", json={"name": "reader", "scopes": ["read"]}
    ).json()
    auth = {"Authorization": f"Bearer {created['key']}"}
    assert client.get("/api/projects/1", headers=auth).status_code == 200

    revoked = client.delete(f"/api/projects/1/keys/{created['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None

    after = client.get("/api/projects/1", headers=auth)
    assert after.status_code == 401
    assert after.headers["content-type"] == "application/problem+json"
    assert after.json()["code"] == "invalid_api_key"


def test_scopes_limit_what_a_key_may_do(client: TestClient):
    reader = client.post("/api/projects/1/keys", json={"name": "r", "scopes": ["read"]}).json()
    auth = {"Authorization": f"Bearer {reader['key']}"}
    denied = client.post(
        "/api/projects/1/keys", json={"name": "x", "scopes": ["read"]}, headers=auth
    )
    assert denied.status_code == 403
    assert "admin" in denied.json()["detail"]


def test_expired_key_is_refused(client: TestClient):
    created = client.post(
        "/api/projects/1/keys",
        json={"name": "old", "scopes": ["read"], "expires_at": "2000-01-01T00:00:00Z"},
    ).json()
    response = client.get("/api/projects/1", headers={"Authorization": f"Bearer {created['key']}"})
    assert response.status_code == 401


def test_keys_of_a_deleted_project_stop_working_at_once(client: TestClient):
    project = client.post("/api/projects", json={"name": "short-lived"}).json()
    created = client.post(
        f"/api/projects/{project['id']}/keys", json={"name": "k", "scopes": ["read"]}
    ).json()
    auth = {"Authorization": f"Bearer {created['key']}"}
    assert client.get(f"/api/projects/{project['id']}", headers=auth).status_code == 200
    assert client.delete(f"/api/projects/{project['id']}").status_code == 204
    assert client.get("/api/me", headers=auth).status_code == 401
