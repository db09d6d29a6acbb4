"""The home dashboard's time-to-first-token and guardrail-block tiles, from gateway calls
through the real trace writer to the rollups (web/pages/home.py, GET /api/traces/aggregates)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from starlette.testclient import TestClient

from pilothouse.store import traces as trace_store
from pilothouse.web import formats
from tests.conftest import ADMIN_KEY, ADMIN_PASSWORD, LiveServer
from tests.gateway.conftest import Gateway, GatewayFactory, make_gateway, openai_model
from tests.guardrails.upstreams import ScriptedUpstream
from tests.web.conftest import ADMIN_EMAIL, csrf

__all__ = ["make_gateway"]

FIRST_TOKEN_S = 0.3
SECRET = "ghp_" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe9Dc8"
POLICIES = {"policies": {"guarded": {"input": [{"check": "secrets", "action": "block"}]}}}


class SlowFirstToken(ScriptedUpstream):
    """Streams its answer after a pause, like a model thinking before the first token."""

    async def stream(self, body: dict[str, Any], send: Any) -> None:
        await asyncio.sleep(FIRST_TOKEN_S)
        await super().stream(body, send)


@pytest.fixture
def gateway(make_gateway: GatewayFactory, tmp_path: Path) -> Iterator[Gateway]:
    upstream = SlowFirstToken(lambda body: "three little words")
    path = tmp_path / "guardrails.yaml"
    path.write_text(yaml.safe_dump(POLICIES))
    with LiveServer(upstream) as server:
        yield make_gateway(
            {"slow": openai_model(server.url)},
            guardrails_config=str(path),
            guardrails_gateway_policy="guarded",
        )


def call_the_gateway(gw: Gateway) -> None:
    """Three streamed calls, one plain call and one call a guardrail blocks; waits for the
    five spans to be written."""
    client = gw.client()
    messages: Any = [{"role": "user", "content": "hello"}]
    for _ in range(3):
        chunks = list(client.chat.completions.create(model="slow", messages=messages, stream=True))
        assert chunks
    client.chat.completions.create(model="slow", messages=messages)
    with pytest.raises(openai.BadRequestError, match="blocked by guardrail"):
        client.chat.completions.create(
            model="slow", messages=[{"role": "user", "content": f"my token is {SECRET}"}]
        )
    deadline = time.monotonic() + 30
    while True:
        gw.runtime.traces.flush(timeout=5)
        with gw.runtime.db.read() as conn:
            if trace_store.count_spans(conn, 1) >= 5:
                return
        assert time.monotonic() < deadline, "gateway spans were not written"
        time.sleep(0.05)


def test_aggregates_and_home_show_ttft_and_guardrail_blocks(gateway: Gateway) -> None:
    call_the_gateway(gateway)
    bearer = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=gateway.url) as client:
        api = client.get("/api/traces/aggregates", headers=bearer)
        assert api.status_code == 200, api.text
        [total] = api.json()["totals"]
        assert total["count"] == 5 and total["blocked"] == 1
        assert total["ttft_count"] == 3  # the streamed calls only
        assert FIRST_TOKEN_S * 1000 * 0.8 <= total["ttft_p50_ms"] <= FIRST_TOKEN_S * 1000 * 2
        assert total["ttft_p50_ms"] <= total["ttft_p95_ms"] <= FIRST_TOKEN_S * 1000 * 2
        by_model = client.get(
            "/api/traces/aggregates", params={"group_by": "model"}, headers=bearer
        ).json()
        # The blocked input never reached a model: its span has none.
        assert [(r["value"], r["ttft_count"]) for r in by_model["totals"]] == [("slow", 3)]

        login = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "next": "/"}
        login["csrf_token"] = csrf(client.get("/login").text)
        assert client.post("/login", data=login).status_code == 303
        page = client.get("/projects/1?range=1h").text
        blocks = re.search(r'Guardrail blocks</a></div>\s*<div class="value">([^<]*)<', page)
        assert blocks and blocks.group(1) == "1"
        ttft = re.search(
            r'Time to first token p50 · p95</div>\s*<div class="value pair">([^<]*)<', page
        )
        assert ttft, page
        p50, p95 = ttft.group(1).split(" · ")
        # The page reads minute rows, the API hour rows: the same histogram, the same answer.
        assert p50 == formats.duration(total["ttft_p50_ms"])
        assert p95 == formats.duration(total["ttft_p95_ms"])


def test_a_quiet_project_shows_no_ttft(admin: TestClient) -> None:
    page = admin.get("/projects/1?range=1h").text
    assert re.search(r'Time to first token p50 · p95</div>\s*<div class="value pair">—<', page)
    assert re.search(r'Guardrail blocks</a></div>\s*<div class="value">0<', page)
