"""Helpers for the web UI tests: an unauthenticated client, signing in, CSRF tokens."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from pilothouse.app import create_app
from pilothouse.identity.passwords import hash_password
from pilothouse.runtime import Runtime
from pilothouse.store import identity as store
from tests.conftest import ADMIN_PASSWORD

ADMIN_EMAIL = "admin@localhost"
VIEWER_EMAIL = "viewer@example.com"
VIEWER_PASSWORD = "viewer-password-1"

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(html: str) -> str:
    """The CSRF token of the first form on the page."""
    found = _CSRF.search(html)
    assert found, "no form with a CSRF token on the page"
    return found.group(1)


def sign_in(client: TestClient, email: str, password: str) -> None:
    token = csrf(client.get("/login").text)
    response = client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token, "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def add_user(runtime: Runtime, email: str, password: str, role: str, project_id: int = 1) -> int:
    with runtime.db.write() as conn:
        user = store.create_user(conn, email, email.split("@")[0].title(), hash_password(password))
        store.set_membership(conn, project_id, user["id"], role)
    return int(user["id"])


@pytest.fixture
def browser_client(runtime: Runtime) -> Iterator[TestClient]:
    """A client of the whole app with no credentials: it signs in like a browser."""
    with TestClient(create_app(runtime)) as client:
        yield client


@pytest.fixture
def admin(browser_client: TestClient) -> TestClient:
    sign_in(browser_client, ADMIN_EMAIL, ADMIN_PASSWORD)
    return browser_client


@pytest.fixture
def viewer(runtime: Runtime, browser_client: TestClient) -> TestClient:
    add_user(runtime, VIEWER_EMAIL, VIEWER_PASSWORD, "viewer")
    sign_in(browser_client, VIEWER_EMAIL, VIEWER_PASSWORD)
    return browser_client
