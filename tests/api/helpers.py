"""Small helpers shared by the API tests."""

from __future__ import annotations

import base64
from typing import Any

from starlette.testclient import TestClient

from tests.conftest import ADMIN_PASSWORD


def basic(email: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{email}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


#: The first administrator, a superuser, by password.
SUPERUSER = basic("admin@localhost", ADMIN_PASSWORD)


def walk(client: TestClient, path: str, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paginated listing, following ``next_cursor`` page by page."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        query = {"limit": limit, **params} | ({"cursor": cursor} if cursor else {})
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) <= limit
        items.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


def make_user(
    client: TestClient, email: str, password: str = "password-123", **extra: Any
) -> dict[str, Any]:
    response = client.post(
        "/api/users",
        json={"email": email, "name": email.split("@")[0], "password": password, **extra},
        headers=SUPERUSER,
    )
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()
    return user
