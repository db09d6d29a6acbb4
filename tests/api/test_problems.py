"""Bad input gets a 4xx problem+json naming what is wrong, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from starlette.testclient import TestClient

from pilothouse.app import create_app
from pilothouse.runtime import Runtime
from pilothouse.settings import Settings
from tests.conftest import ADMIN_KEY, make_settings

PROBLEM = "application/problem+json"


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].endswith(body["code"])
    assert body["title"] and body["detail"]
    return body


def test_malformed_json_names_the_body(client: TestClient):
    response = client.post(
        "/api/projects", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    body = _problem(response, 400)
    assert body["code"] == "malformed_json"
    assert body["errors"][0]["path"] == "body"
    assert "malformed JSON" in body["errors"][0]["reason"]


def test_wrong_types_and_unknown_fields_give_field_paths(client: TestClient):
    response = client.post(
        "/api/projects/1/keys", json={"name": "k", "scopes": ["read", 7], "colour": "red"}
    )
    body = _problem(response, 422)
    assert body["code"] == "validation_failed"
    paths = {e["path"] for e in body["errors"]}
    assert {"body.scopes.1", "body.colour"} <= paths

    typed = client.post("/api/projects", json={"name": "p", "retention_days": "forever"})
    assert [e["path"] for e in _problem(typed, 422)["errors"]] == ["body.retention_days"]

    query = client.get("/api/projects", params={"limit": "lots"})
    assert [e["path"] for e in _problem(query, 422)["errors"]] == ["query.limit"]

    path = client.get("/api/projects/zero")
    assert [e["path"] for e in _problem(path, 422)["errors"]] == ["path.project_id"]


def test_body_that_is_not_an_object(client: TestClient):
    _problem(client.post("/api/projects", json=["a"]), 422)
    _problem(
        client.post("/api/projects", content=b"", headers={"content-type": "application/json"}), 422
    )


def test_unknown_route_and_method(client: TestClient):
    assert _problem(client.get("/api/nothing-here"), 404)["code"] == "not_found"
    assert _problem(client.get("/nowhere"), 404)["code"] == "not_found"
    assert _problem(client.put("/api/projects"), 405)["code"] == "method_not_allowed"


def _small_client(tmp_path, database_url: str) -> Iterator[TestClient]:
    settings: Settings = make_settings(tmp_path, database_url, max_body_bytes=1000)
    runtime = Runtime(settings)
    runtime.migrate()
    runtime.bootstrap()
    try:
        with TestClient(
            create_app(runtime), headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as client:
            yield client
    finally:
        runtime.db.close()


def test_oversized_body_is_a_413(tmp_path, database_url: str):
    for client in _small_client(tmp_path, database_url):
        declared = client.post("/api/projects", json={"name": "x" * 2000})
        body = _problem(declared, 413)
        assert body["code"] == "payload_too_large"
        assert body["errors"][0]["path"] == "body"

        def chunks() -> Iterator[bytes]:
            yield b'{"name": "'
            for _ in range(20):
                yield b"x" * 100
            yield b'"}'

        chunked = client.post(
            "/api/projects", content=chunks(), headers={"content-type": "application/json"}
        )
        assert "content-length" not in chunked.request.headers
        _problem(chunked, 413)

        assert client.post("/api/projects", json={"name": "small"}).status_code == 201


def test_errors_carry_retry_after():
    from pilothouse.errors import RateLimited, Unavailable

    assert RateLimited("slow down", retry_after=0.2).headers() == {"Retry-After": "1"}
    assert Unavailable("later", retry_after=4.2).headers() == {"Retry-After": "5"}
    assert RateLimited("no hint").headers() == {}


def test_non_finite_numbers_are_refused(client: TestClient):
    for raw in (b"NaN", b"Infinity", b"-Infinity", b"1e999"):
        response = client.post(
            "/api/projects/1/keys",
            content=b'{"name": "k", "scopes": ["read"], "limits": {"rpm": ' + raw + b"}}",
            headers={"content-type": "application/json"},
        )
        assert response.status_code in (400, 422), (raw, response.text)
        assert response.headers["content-type"] == PROBLEM

    nested = client.post(
        "/api/jobs",
        content=b'{"name": "ping", "args": {"fail_times": [1, NaN]}}',
        headers={"content-type": "application/json"},
    )
    body = _problem(nested, 422)
    assert "args.fail_times.1 is not a finite number" in body["detail"]
