"""Management API of deployments: each alias's deployments and their circuit breakers."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

from pilothouse.gateway.deployments_api import public_url
from tests.conftest import ADMIN_KEY
from tests.gateway.conftest import Gateway, GatewayFactory, Upstream, openai_model

MESSAGES = [{"role": "user", "content": "hi"}]


def deployments(gw: Gateway, key: str = ADMIN_KEY, **params: str) -> httpx.Response:
    return httpx.get(
        gw.url + "/api/gateway/deployments",
        params=params,
        headers={"Authorization": f"Bearer {key}"},
    )


def breaker_of(gw: Gateway, model: str) -> dict[str, Any]:
    (row,) = deployments(gw, model=model).json()["data"]
    breaker: dict[str, Any] = row["deployments"][0]["breaker"]
    return breaker


def test_lists_deployments_without_credentials(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    secret_url = upstream.url.replace("http://", "http://user:hunter2@") + "/v1?api-key=hunter2"
    gw = make_gateway(
        {
            "gpt": {
                "deployments": [
                    {"provider": "openai", "model": "gpt-x", "base_url": secret_url, "weight": 3,
                     "api_key": "sk-hunter2", "headers": {"api-key": "hunter2"}},
                    {"provider": "mock", "model": "echo"},
                ],
                "fallbacks": ["backup"],
            },
            "backup": {"deployments": [{"provider": "mock", "model": "echo"}]},
        }
    )  # fmt: skip
    response = deployments(gw)
    assert response.status_code == 200
    assert "hunter2" not in response.text
    models = {row["model"]: row for row in response.json()["data"]}
    assert set(models) == {"gpt", "backup"} and models["gpt"]["fallbacks"] == ["backup"]
    first, second = models["gpt"]["deployments"]
    assert first == {
        "id": "gpt#0",
        "provider": "openai",
        "model": "gpt-x",
        "base_url": upstream.url + "/v1",
        "weight": 3.0,
        "breaker": {
            "state": "closed",
            "open_until": None,
            "consecutive_failures": 0,
            "last_error": None,
            "last_error_at": None,
        },
    }
    assert second["provider"] == "mock" and second["base_url"] == ""


def test_breaker_opens_after_failures_and_closes_after_cooldown(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    gw = make_gateway(
        {"gpt": openai_model(upstream.url, "m")},
        router={"retries": 0, "backoff": 0, "breaker_failures": 2, "breaker_cooldown": 1},
    )  # fmt: skip
    client = gw.client()
    upstream.fake.failures = [(500, "disk on fire"), (500, "disk on fire")]
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="gpt", messages=MESSAGES)  # type: ignore[arg-type]
    breaker = breaker_of(gw, "gpt")
    assert breaker["state"] == "open" and breaker["consecutive_failures"] == 2
    assert "disk on fire" in breaker["last_error"]
    assert breaker["last_error_at"] is not None and breaker["open_until"] is not None
    with pytest.raises(openai.APIStatusError) as caught:  # left out while open
        client.chat.completions.create(model="gpt", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == 503
    time.sleep(1.1)
    assert breaker_of(gw, "gpt")["state"] == "half-open"
    client.chat.completions.create(model="gpt", messages=MESSAGES)  # type: ignore[arg-type]
    breaker = breaker_of(gw, "gpt")
    assert breaker["state"] == "closed" and breaker["open_until"] is None
    assert breaker["consecutive_failures"] == 0
    assert "disk on fire" in breaker["last_error"]  # the latest error stays visible


def test_needs_an_admin_and_a_known_model(make_gateway: GatewayFactory) -> None:
    gw = make_gateway()
    project_id = gw.runtime.keys.verify(ADMIN_KEY).project_id
    key, _ = gw.runtime.keys.create(project_id, "app", ["gateway", "read"])
    refused = deployments(gw, key)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    missing = deployments(gw, model="nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert deployments(gw, "ph-wrong").status_code == 401


def test_public_url_drops_secrets() -> None:
    assert (
        public_url("https://u:p@api.example.com:8443/v1?key=s#x")
        == "https://api.example.com:8443/v1"
    )
    assert public_url("") == ""
