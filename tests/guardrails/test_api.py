"""``/api/guardrails``: the standalone check endpoint, on both storage backends."""

from __future__ import annotations

from starlette.testclient import TestClient


def test_check_endpoint_redacts_and_reports_findings(client: TestClient) -> None:
    text = "Contact ada@example.com or +44 20 7946 0958"
    response = client.post("/api/guardrails/check", json={"text": text, "policy": "redact-pii"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verdict"] == "modify"
    assert body["text"] == "Contact <EMAIL_1> or <PHONE_1>"
    assert body["placeholders"] == {}
    pii = next(c for c in body["checks"] if c["check"] == "pii")
    spans = [(f["type"], text[f["start"] : f["end"]]) for f in pii["findings"]]
    assert spans == [("EMAIL", "ada@example.com"), ("PHONE", "+44 20 7946 0958")]


def test_check_endpoint_pseudonymize_returns_the_mapping(client: TestClient) -> None:
    body = client.post("/api/guardrails/check", json={"text": "hi ada@example.com"}).json()
    assert body["text"] == "hi <EMAIL_1>"
    assert body["placeholders"] == {"<EMAIL_1>": "ada@example.com"}


def test_blocked_answers_never_echo_the_text(client: TestClient) -> None:
    secret = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
    response = client.post("/api/guardrails/check", json={"text": f"key {secret}"})
    body = response.json()
    assert body["verdict"] == "block" and body["blocked_by"] == "secrets"
    assert body["text"] is None
    assert secret not in response.text


def test_inline_policy_and_where(client: TestClient) -> None:
    policy = {"output": [{"check": "max_length", "action": "block", "options": {"max_chars": 3}}]}
    body = client.post(
        "/api/guardrails/check", json={"text": "toolong", "policy": policy, "where": "output"}
    ).json()
    assert body["verdict"] == "block" and body["blocked_by"] == "max_length"


def test_invalid_requests_are_problems(client: TestClient) -> None:
    bad = client.post(
        "/api/guardrails/check", json={"text": "x", "policy": {"input": [{"check": "nope"}]}}
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["errors"][0]["path"] == "inline.input[0].check"
    missing = client.post("/api/guardrails/check", json={"text": "x", "policy": "nope"})
    assert missing.status_code == 404
    unknown_field = client.post("/api/guardrails/check", json={"text": "x", "surprise": 1})
    assert unknown_field.status_code == 422


def test_listing_checks_and_policies_and_openapi(client: TestClient) -> None:
    listed = {c["name"]: c for c in client.get("/api/guardrails/checks").json()}
    assert {"pii", "secrets", "injection", "toxicity", "canary", "json_schema"} <= set(listed)
    assert listed["groundedness"]["wheres"] == ["output"] and listed["groundedness"]["complete"]
    assert listed["topics"]["spans"] and not listed["topics"]["complete"]
    policies = {p["name"] for p in client.get("/api/guardrails/policies").json()}
    assert {"default", "strict", "redact-pii", "monitor"} <= policies
    paths = client.get("/api/openapi.json").json()["paths"]
    assert "/api/guardrails/check" in paths


def test_requires_credentials(client: TestClient) -> None:
    response = client.post(
        "/api/guardrails/check", json={"text": "x"}, headers={"Authorization": ""}
    )
    assert response.status_code == 401


def test_groundedness_and_topics_through_the_api(client: TestClient) -> None:
    rule = {
        "check": "groundedness",
        "action": "flag",
        "options": {"context": ["The library opens at 9 and closes at 17 on weekdays."]},
    }
    body = {"text": "It opens at 7 and serves breakfast.", "where": "output"}
    flagged = client.post("/api/guardrails/check", json={**body, "policy": {"output": [rule]}})
    assert flagged.status_code == 200 and flagged.json()["verdict"] == "flag"
    grounded = {**body, "text": "The library opens at 9 on weekdays."}
    ok = client.post("/api/guardrails/check", json={**grounded, "policy": {"output": [rule]}})
    assert ok.json()["verdict"] == "allow"
    topics = {"check": "topics", "options": {"deny": {"legal": {"keywords": ["lawsuit"]}}}}
    bad = {"input": [{**topics, "action": "pseudonymize", "threshold": "high"}]}
    refused = client.post("/api/guardrails/check", json={"text": "x", "policy": bad})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["path"] == "inline.input[0].threshold"
