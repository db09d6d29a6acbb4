"""Settings pages: API keys and members, with role checks (web/pages/settings.py)."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from pilothouse.runtime import Runtime
from pilothouse.store import identity as store
from tests.web.conftest import VIEWER_EMAIL, add_user, csrf


def _create_key(client: TestClient, name: str, *scopes: str) -> str:
    token = csrf(client.get("/projects/1/settings/keys").text)
    data = {"name": name, "csrf_token": token, **{f"scope_{s}": "1" for s in scopes}}
    response = client.post("/projects/1/settings/keys", data=data)
    assert response.status_code == 201, response.text
    found = re.search(r'<code id="new-key" class="secret">([^<]+)</code>', response.text)
    assert found
    return found.group(1)


def test_admin_creates_a_key_shown_once_that_works(admin: TestClient, runtime: Runtime) -> None:
    key = _create_key(admin, "backend", "read")
    assert key.startswith("ph-")
    assert runtime.keys.verify(key, "read").name == "backend"
    me = admin.get("/api/me", headers={"Authorization": f"Bearer {key}"})
    assert me.json()["name"] == "backend"
    listing = admin.get("/projects/1/settings/keys").text
    assert "backend" in listing
    assert key not in listing
    assert key[:10] in listing


def test_key_needs_a_name_and_a_scope(admin: TestClient) -> None:
    token = csrf(admin.get("/projects/1/settings/keys").text)
    no_scope = admin.post("/projects/1/settings/keys", data={"name": "x", "csrf_token": token})
    assert no_scope.status_code == 400
    assert "at least one scope" in no_scope.text
    no_name = admin.post(
        "/projects/1/settings/keys", data={"name": " ", "scope_read": "1", "csrf_token": token}
    )
    assert no_name.status_code == 400


def test_revoke_asks_for_confirmation_then_revokes(admin: TestClient, runtime: Runtime) -> None:
    key = _create_key(admin, "to-revoke", "gateway")
    key_id = runtime.keys.verify(key).id
    confirm = admin.get(f"/projects/1/settings/keys/{key_id}/revoke")
    assert confirm.status_code == 200
    assert "Revoke the key" in confirm.text
    assert runtime.keys.lookup(key) is not None
    done = admin.post(
        f"/projects/1/settings/keys/{key_id}/revoke", data={"csrf_token": csrf(confirm.text)}
    )
    assert done.status_code == 200
    assert "Key “to-revoke” revoked." in done.text
    assert runtime.keys.lookup(key) is None
    assert 'class="pill pill-bad">revoked' in done.text


def test_revoking_a_key_of_another_project_is_404(admin: TestClient, runtime: Runtime) -> None:
    with runtime.db.write() as conn:
        other = store.create_project(conn, 1, "other")
    _, row = runtime.keys.create(other["id"], "theirs", ["read"])
    token = csrf(admin.get("/projects/1/settings/keys").text)
    response = admin.post(
        f"/projects/1/settings/keys/{row['id']}/revoke", data={"csrf_token": token}
    )
    assert response.status_code == 404
    with runtime.db.read() as conn:
        assert store.get_key(conn, row["id"])["revoked_at"] is None


def test_html_in_a_key_name_is_escaped(admin: TestClient) -> None:
    _create_key(admin, "<script>alert(1)</script>", "read")
    page = admin.get("/projects/1/settings/keys").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_viewer_sees_no_edit_buttons_and_edits_are_refused(
    viewer: TestClient, runtime: Runtime
) -> None:
    keys = viewer.get("/projects/1/settings/keys")
    assert keys.status_code == 200
    assert "Create key" not in keys.text
    assert "Revoke" not in keys.text
    members = viewer.get("/projects/1/settings/members")
    assert VIEWER_EMAIL in members.text
    assert "Remove" not in members.text
    assert "Add a member" not in members.text
    token = csrf(members.text)
    create = viewer.post(
        "/projects/1/settings/keys", data={"name": "x", "scope_read": "1", "csrf_token": token}
    )
    assert create.status_code == 403
    assert "lacks the " in create.text
    with runtime.db.read() as conn:
        admin_key = store.page(conn, store.api_keys)[0][0]
    revoke = viewer.post(
        f"/projects/1/settings/keys/{admin_key['id']}/revoke", data={"csrf_token": token}
    )
    assert revoke.status_code == 403
    promote = viewer.post(
        "/projects/1/settings/members",
        data={"email": VIEWER_EMAIL, "role": "owner", "csrf_token": token},
    )
    assert promote.status_code == 403
    with runtime.db.read() as conn:
        assert store.get_key(conn, admin_key["id"])["revoked_at"] is None


def test_admin_adds_changes_and_removes_members(admin: TestClient, runtime: Runtime) -> None:
    with runtime.db.write() as conn:
        from pilothouse.identity.passwords import hash_password

        user = store.create_user(conn, "new@example.com", "New", hash_password("new-password"))
    token = csrf(admin.get("/projects/1/settings/members").text)
    added = admin.post(
        "/projects/1/settings/members",
        data={"email": "new@example.com", "role": "viewer", "csrf_token": token},
    )
    assert added.status_code == 200
    assert "new@example.com is now viewer." in added.text
    changed = admin.post(
        f"/projects/1/settings/members/{user['id']}", data={"role": "member", "csrf_token": token}
    )
    assert "new@example.com is now member." in changed.text
    with runtime.db.read() as conn:
        assert store.get_membership(conn, 1, user["id"])["role"] == "member"
    removed = admin.post(
        f"/projects/1/settings/members/{user['id']}",
        data={"action": "remove", "csrf_token": token},
    )
    assert "new@example.com removed." in removed.text
    with runtime.db.read() as conn:
        assert store.roles_of(conn, user["id"]) == {}


def test_unknown_email_cannot_be_added(admin: TestClient) -> None:
    token = csrf(admin.get("/projects/1/settings/members").text)
    response = admin.post(
        "/projects/1/settings/members",
        data={"email": "ghost@example.com", "role": "viewer", "csrf_token": token},
    )
    assert response.status_code == 404


def test_only_owners_make_owners(runtime: Runtime, browser_client: TestClient) -> None:
    from tests.web.conftest import sign_in

    add_user(runtime, "projadmin@example.com", "projadmin-pass", "admin")
    target = add_user(runtime, "someone@example.com", "someone-pass", "member")
    sign_in(browser_client, "projadmin@example.com", "projadmin-pass")
    token = csrf(browser_client.get("/projects/1/settings/members").text)
    response = browser_client.post(
        f"/projects/1/settings/members/{target}", data={"role": "owner", "csrf_token": token}
    )
    assert response.status_code == 403
    ok = browser_client.post(
        f"/projects/1/settings/members/{target}", data={"role": "viewer", "csrf_token": token}
    )
    assert ok.status_code == 200


def test_models_page_shows_gateway_routes_without_secrets(admin: TestClient) -> None:
    page = admin.get("/projects/1/settings/models")
    assert page.status_code == 200
    assert "mock/echo" in page.text
    assert "Router policy" in page.text


def test_head_requests_change_nothing(admin: TestClient, runtime: Runtime) -> None:
    key = _create_key(admin, "kept", "read")
    key_id = runtime.keys.verify(key).id
    response = admin.head(f"/projects/1/settings/keys/{key_id}/revoke")
    assert response.status_code == 200
    assert runtime.keys.lookup(key) is not None
    for method in ("PUT", "DELETE", "PATCH"):
        assert (
            admin.request(method, f"/projects/1/settings/keys/{key_id}/revoke").status_code == 405
        )
