"""Projects, organizations and memberships through the management API."""

from __future__ import annotations

import base64

from starlette.testclient import TestClient

from tests.api.helpers import SUPERUSER, basic, make_user, walk


def test_project_crud(client: TestClient):
    created = client.post("/api/projects", json={"name": "chatbot", "retention_days": 30})
    assert created.status_code == 201, created.text
    project = created.json()
    assert project["org_id"] == 1 and project["retention_days"] == 30
    pid = project["id"]

    assert client.get(f"/api/projects/{pid}").json() == project
    renamed = client.patch(f"/api/projects/{pid}", json={"name": "assistant"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "assistant"
    by_name = client.get("/api/projects", params={"name": "assistant"}).json()["data"]
    assert [p["id"] for p in by_name] == [pid]

    assert client.post("/api/projects", json={"name": "assistant"}).status_code == 409
    assert client.delete(f"/api/projects/{pid}").status_code == 204
    gone = client.get(f"/api/projects/{pid}")
    assert gone.status_code == 404
    assert gone.headers["content-type"] == "application/problem+json"


def test_null_name_is_refused(client: TestClient):
    response = client.patch("/api/projects/1", json={"name": None})
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "body.name"


def test_org_admin_key_creates_projects_in_its_organization(client: TestClient):
    # ADMIN_KEY is an admin-scoped key of project 1 (org 1), not a superuser.
    assert client.get("/api/me").json()["is_superuser"] is False
    assert client.post("/api/projects", json={"name": "p2"}).json()["org_id"] == 1

    other_org = client.post("/api/orgs", json={"name": "acme"}, headers=SUPERUSER).json()
    refused = client.post("/api/projects", json={"name": "p3", "org_id": other_org["id"]})
    assert refused.status_code == 403


def test_only_superusers_create_organizations(client: TestClient):
    assert client.post("/api/orgs", json={"name": "acme"}).status_code == 403
    created = client.post("/api/orgs", json={"name": "acme"}, headers=SUPERUSER)
    assert created.status_code == 201
    assert client.post("/api/orgs", json={"name": "acme"}, headers=SUPERUSER).status_code == 409
    names = [o["name"] for o in client.get("/api/orgs", headers=SUPERUSER).json()["data"]]
    assert names == ["default", "acme"]
    # the org-admin key sees its own organization only
    assert [o["name"] for o in client.get("/api/orgs").json()["data"]] == ["default"]


def test_viewer_can_read_but_not_write(client: TestClient):
    user = make_user(client, "viewer@example.com")
    assert client.put(f"/api/projects/1/members/{user['id']}", json={"role": "viewer"}).is_success
    viewer = basic("viewer@example.com", "password-123")

    assert client.get("/api/projects/1", headers=viewer).status_code == 200
    assert [p["id"] for p in client.get("/api/projects", headers=viewer).json()["data"]] == [1]
    assert client.patch("/api/projects/1", json={"name": "x"}, headers=viewer).status_code == 403
    assert client.delete("/api/projects/1", headers=viewer).status_code == 403
    keys = client.post(
        "/api/projects/1/keys", json={"name": "k", "scopes": ["read"]}, headers=viewer
    )
    assert keys.status_code == 403
    assert client.post("/api/projects", json={"name": "mine"}, headers=viewer).status_code == 403

    other = client.post("/api/projects", json={"name": "hidden"}).json()
    assert client.get(f"/api/projects/{other['id']}", headers=viewer).status_code == 403


def test_read_key_cannot_write(client: TestClient):
    reader = client.post("/api/projects/1/keys", json={"name": "r", "scopes": ["read"]}).json()
    auth = {"Authorization": f"Bearer {reader['key']}"}
    assert client.get("/api/projects/1", headers=auth).status_code == 200
    assert client.patch("/api/projects/1", json={"name": "x"}, headers=auth).status_code == 403
    assert client.post("/api/projects", json={"name": "y"}, headers=auth).status_code == 403


def test_members(client: TestClient):
    user = make_user(client, "member@example.com")
    uid = user["id"]
    set_role = client.put(f"/api/projects/1/members/{uid}", json={"role": "member"})
    assert set_role.status_code == 200 and set_role.json()["role"] == "member"
    changed = client.put(f"/api/projects/1/members/{uid}", json={"role": "admin"})
    assert changed.json()["role"] == "admin"
    members = {m["user_id"]: m["role"] for m in walk(client, "/api/projects/1/members", 1)}
    assert members == {1: "owner", uid: "admin"}

    # only an owner (or superuser) makes owners; the admin key is neither
    assert client.put(f"/api/projects/1/members/{uid}", json={"role": "owner"}).status_code == 403
    owner = client.put(f"/api/projects/1/members/{uid}", json={"role": "owner"}, headers=SUPERUSER)
    assert owner.json()["role"] == "owner"

    assert client.put("/api/projects/1/members/9999", json={"role": "viewer"}).status_code == 404
    assert client.put(f"/api/projects/1/members/{uid}", json={"role": "god"}).status_code == 422
    assert client.delete(f"/api/projects/1/members/{uid}").status_code == 204
    assert client.delete(f"/api/projects/1/members/{uid}").status_code == 404


def test_user_creating_a_project_owns_it(client: TestClient):
    make_user(client, "boss@example.com")
    boss = basic("boss@example.com", "password-123")
    # a user with no organization cannot create projects...
    assert client.post("/api/projects", json={"name": "b"}, headers=boss).status_code == 403
    # ...a superuser can, and becomes the owner
    created = client.post("/api/projects", json={"name": "b"}, headers=SUPERUSER).json()
    members = client.get(f"/api/projects/{created['id']}/members").json()["data"]
    assert [(m["user_id"], m["role"]) for m in members] == [(1, "owner")]


def test_pagination_walks_every_project_once(client: TestClient):
    for i in range(12):
        assert client.post("/api/projects", json={"name": f"p{i:02}"}).status_code == 201
    everything = walk(client, "/api/projects", 5)
    ids = [p["id"] for p in everything]
    assert len(ids) == 13 and len(set(ids)) == 13 and ids == sorted(ids)
    assert {p["name"] for p in everything} == {"default"} | {f"p{i:02}" for i in range(12)}
    assert walk(client, "/api/projects", 500) == everything


def test_bad_cursor_is_a_400(client: TestClient):
    superscript_two = base64.urlsafe_b64encode("²".encode()).decode()  # isdigit(), not int()
    for cursor in ("!!!", "bm90LWEtbnVtYmVy", "x", superscript_two):
        response = client.get("/api/projects", params={"cursor": cursor})
        assert response.status_code == 400, cursor
        assert response.json()["errors"][0]["path"] == "cursor"
