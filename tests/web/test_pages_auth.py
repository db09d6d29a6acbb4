"""Signing in and out, sessions, CSRF and the login rate limit (web/pages/auth.py, web/ui.py)."""

from __future__ import annotations

from starlette.testclient import TestClient

from pilothouse.app import create_app
from pilothouse.runtime import Runtime
from pilothouse.store import identity as store
from pilothouse.web.sessions import COOKIE
from tests.conftest import ADMIN_KEY, ADMIN_PASSWORD, make_settings
from tests.web.conftest import ADMIN_EMAIL, csrf, sign_in


def test_anonymous_pages_redirect_to_login_keeping_the_target(browser_client: TestClient) -> None:
    response = browser_client.get("/projects/1/settings/keys?x=1", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fprojects%2F1%2Fsettings%2Fkeys%3Fx%3D1"
    assert browser_client.get("/", follow_redirects=False).headers["location"] == "/login"


def test_sign_in_sets_a_secure_session_cookie_and_lands_on_the_project(
    browser_client: TestClient,
) -> None:
    page = browser_client.get("/login")
    assert page.status_code == 200
    assert 'type="password"' in page.text
    response = browser_client.post(
        "/login",
        data={
            "email": "ADMIN@localhost",
            "password": ADMIN_PASSWORD,
            "csrf_token": csrf(page.text),
            "next": "/projects/1/settings/members",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/projects/1/settings/members"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(COOKIE + "=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    home = browser_client.get("/", follow_redirects=True)
    assert home.url.path == "/projects/1"
    assert ADMIN_EMAIL in home.text or "Administrator" in home.text


def test_login_refuses_offsite_next(browser_client: TestClient) -> None:
    page = browser_client.get("/login?next=//evil.example/x")
    assert 'name="next" value="/"' in page.text
    response = browser_client.post(
        "/login",
        data={
            "email": ADMIN_EMAIL,
            "password": ADMIN_PASSWORD,
            "csrf_token": csrf(page.text),
            "next": "https://evil.example/",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"


def test_wrong_password_is_refused(browser_client: TestClient) -> None:
    token = csrf(browser_client.get("/login").text)
    response = browser_client.post(
        "/login", data={"email": ADMIN_EMAIL, "password": "nope-nope", "csrf_token": token}
    )
    assert response.status_code == 401
    assert "Wrong email or password" in response.text
    assert browser_client.get("/projects/1", follow_redirects=False).status_code == 303


def test_login_without_csrf_token_is_rejected(browser_client: TestClient) -> None:
    browser_client.get("/login")
    response = browser_client.post(
        "/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 403
    assert "security token" in response.text


def test_edit_without_csrf_token_is_rejected(admin: TestClient, runtime: Runtime) -> None:
    response = admin.post("/projects/1/settings/keys", data={"name": "x", "scope_read": "1"})
    assert response.status_code == 403
    forged = admin.post(
        "/projects/1/settings/keys",
        data={"name": "x", "scope_read": "1", "csrf_token": "forged"},
    )
    assert forged.status_code == 403
    with runtime.db.read() as conn:
        names = [k["name"] for k in store.page(conn, store.api_keys)[0]]
    assert names == ["admin"]


def test_login_is_rate_limited_per_client_and_email(tmp_path, database_url) -> None:
    settings = make_settings(tmp_path, database_url, web_login_attempts=3)
    runtime = Runtime(settings)
    runtime.migrate()
    runtime.bootstrap()
    try:
        with TestClient(create_app(runtime)) as client:
            token = csrf(client.get("/login").text)
            for _ in range(3):
                wrong = {"email": ADMIN_EMAIL, "password": "wrong-pass", "csrf_token": token}
                assert client.post("/login", data=wrong).status_code == 401
            right = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token}
            limited = client.post("/login", data=right)
            assert limited.status_code == 429
            assert int(limited.headers["retry-after"]) >= 1
            assert "too many login attempts" in limited.text
            other = {"email": "someone@else", "password": "x", "csrf_token": token}
            assert client.post("/login", data=other).status_code == 401
    finally:
        runtime.db.close()


def test_sign_out_ends_the_session(admin: TestClient) -> None:
    token = csrf(admin.get("/projects/1").text)
    response = admin.post("/logout", data={"csrf_token": token}, follow_redirects=True)
    assert response.url.path == "/login"
    assert "You are signed out." in response.text
    assert admin.get("/projects/1", follow_redirects=False).status_code == 303


def test_changing_the_password_ends_other_sessions(admin: TestClient, runtime: Runtime) -> None:
    assert admin.get("/projects/1", follow_redirects=False).status_code == 200
    with runtime.db.write() as conn:
        user = store.user_by_email(conn, ADMIN_EMAIL)
        assert user is not None
        store.update_user(conn, user["id"], password_hash=user["password_hash"] + "x")
    assert admin.get("/projects/1", follow_redirects=False).status_code == 303


def test_forged_cookie_is_no_session(browser_client: TestClient) -> None:
    browser_client.cookies.set(COOKIE, "eyJ1aWQiOjF9.forged.signature")
    assert browser_client.get("/projects/1", follow_redirects=False).status_code == 303


def test_pages_send_security_headers(admin: TestClient) -> None:
    response = admin.get("/projects/1")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_api_and_health_routes_still_answer(admin: TestClient) -> None:
    assert admin.get("/healthz").json() == {"status": "ok"}
    me = admin.get("/api/me", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert me.status_code == 200
    assert admin.get("/api/nope").headers["content-type"] == "application/problem+json"
    assert admin.get("/static/pilothouse.css").status_code == 200


def test_unknown_project_is_a_404_page(admin: TestClient) -> None:
    response = admin.get("/projects/999")
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]


def test_project_switcher_lists_visible_projects(admin: TestClient, runtime: Runtime) -> None:
    with runtime.db.write() as conn:
        other = store.create_project(conn, 1, "second <b>project</b>")
    page = admin.get("/projects/1").text
    assert "second &lt;b&gt;project&lt;/b&gt;" in page
    switched = admin.get(f"/switch?project_id={other['id']}", follow_redirects=False)
    assert switched.headers["location"] == f"/projects/{other['id']}"


def test_non_member_cannot_open_a_project(runtime: Runtime, browser_client: TestClient) -> None:
    from tests.web.conftest import add_user

    with runtime.db.write() as conn:
        other = store.create_project(conn, 1, "private")
    add_user(runtime, "outsider@example.com", "outsider-pass", "member", project_id=other["id"])
    sign_in(browser_client, "outsider@example.com", "outsider-pass")
    assert browser_client.get("/projects/1").status_code == 403
    assert browser_client.get("/", follow_redirects=False).headers["location"] == (
        f"/projects/{other['id']}"
    )
