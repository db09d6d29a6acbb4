"""Management API of project limits and spend."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.testclient import TestClient

from pilothouse.runtime import Runtime

CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}


def test_project_limits_round_trip_and_apply_at_once(client: TestClient, runtime: Runtime):
    assert client.get("/api/projects/1/limits").json()["rpm"] is None
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    response = client.put("/api/projects/1/limits", json={"rpm": 1, "budget_usd_month": 50})
    assert response.status_code == 200
    assert response.json()["rpm"] == 1 and response.json()["budget_usd_month"] == 50
    assert client.get("/api/projects/1/limits").json()["rpm"] == 1
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    refused = client.post("/v1/chat/completions", json=CHAT)
    assert refused.status_code == 429
    assert "project:1" in refused.json()["error"]["message"]
    # Other project settings are kept; clearing the limits lifts them.
    assert client.put("/api/projects/1/limits", json={}).status_code == 200
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200


def test_limits_are_validated_and_need_admin(client: TestClient, runtime: Runtime):
    assert client.put("/api/projects/1/limits", json={"rpm": -1}).status_code == 422
    assert client.put("/api/projects/1/limits", json={"rmp": 5}).status_code == 422
    assert client.put("/api/projects/999/limits", json={}).status_code == 404
    key, _ = runtime.keys.create(1, "reader", ["read"])
    reader = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/projects/1/limits", headers=reader).status_code == 200
    assert client.put("/api/projects/1/limits", json={}, headers=reader).status_code == 403


def test_spend_report_includes_unflushed_spend(client: TestClient, runtime: Runtime):
    for _ in range(3):
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    report = client.get("/api/projects/1/spend")
    assert report.status_code == 200
    doc = report.json()
    today = datetime.now(UTC).date().isoformat()
    assert doc["until"] == today and doc["since"] == today[:8] + "01"
    (row,) = doc["data"]
    assert row["day"] == today and row["requests"] == 3 and row["key_id"] is not None
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0
    assert doc["total_usd"] == 0  # mock models are free

    def spend(since: str, until: str) -> Any:
        return client.get("/api/projects/1/spend", params={"since": since, "until": until})

    assert spend("2020-01-01", "2020-01-31").json()["data"] == []
    assert spend("2020-02-01", "2020-01-01").status_code == 400
    assert spend("2020-01-01", "2022-01-01").status_code == 400
