"""The trace query API: list filters and pagination, trace tree, sessions, aggregates, scores."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from pilothouse.runtime import Runtime
from pilothouse.tracing.model import Span
from tests.api.helpers import walk

NOW_S = (int(time.time()) // 3600) * 3600 - 3600  # the start of the previous hour
SEC = 1_000_000_000


def make_trace(
    *,
    start_s: float,
    duration_ms: float,
    model: str | None = "gpt-4o-mini",
    user: str | None = None,
    session: str | None = None,
    tags: list[str] | None = None,
    error: bool = False,
    tokens: tuple[int, int] = (10, 5),
    cost: float | None = 0.001,
    name: str = "agent.run",
    question: str = "hello",
    project_id: int = 1,
) -> list[Span]:
    """A root span and one LLM child span."""
    trace_id = secrets.token_hex(16)
    root_id = secrets.token_hex(8)
    start = int(start_s * SEC)
    end = start + int(duration_ms * 1e6)
    root = Span(
        project_id=project_id,
        trace_id=trace_id,
        span_id=root_id,
        name=name,
        start_time_ns=start,
        end_time_ns=end,
        status_code="error" if error else "ok",
        attributes={"input.value": question, "output.value": f"answer to {question}"},
        user_id=user,
        session_id=session,
        tags=tags or [],
    )
    llm = Span(
        project_id=project_id,
        trace_id=trace_id,
        span_id=secrets.token_hex(8),
        parent_span_id=root_id,
        name="chat",
        start_time_ns=start + 1_000_000,
        end_time_ns=end - 1_000_000,
        attributes={"gen_ai.operation.name": "chat"},
        request_model=model,
        provider="openai" if model else None,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cost_usd=cost,
    )
    return [root, llm] if model else [root]


@pytest.fixture
def seeded(client: TestClient, runtime: Runtime) -> dict[str, str]:
    traces = {
        "a": make_trace(start_s=NOW_S + 10, duration_ms=100, user="ann", tags=["beta"]),
        "b": make_trace(start_s=NOW_S + 20, duration_ms=2500, user="bob", error=True),
        "c": make_trace(
            start_s=NOW_S + 30,
            duration_ms=400,
            model="claude-3-haiku",
            user="ann",
            tags=["beta", "vip"],
            tokens=(1000, 500),
            cost=0.5,
            question="refund for order 42",
        ),
        "d": make_trace(start_s=NOW_S + 90, duration_ms=50, session="s1", name="turn"),
        "e": make_trace(start_s=NOW_S + 95, duration_ms=60, session="s1", name="turn"),
        "f": make_trace(start_s=NOW_S + 3700, duration_ms=70, model=None, session="s1"),
    }
    runtime.traces.write_sync([s for spans in traces.values() for s in spans])
    return {key: spans[0].trace_id for key, spans in traces.items()}


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [t["trace_id"] for t in response.json()["data"]]


def test_list_filters(client: TestClient, seeded: dict[str, str]):
    t = seeded
    get = client.get
    assert ids(get("/api/traces")) == [t[k] for k in "fedcba"]
    assert set(ids(get("/api/traces", params={"model": "gpt-4o-mini"}))) == {
        t["a"],
        t["b"],
        t["d"],
        t["e"],
    }
    assert ids(get("/api/traces", params={"user_id": "ann"})) == [t["c"], t["a"]]
    assert ids(get("/api/traces", params={"tag": ["beta", "vip"]})) == [t["c"]]
    assert ids(get("/api/traces", params={"tag": "beta"})) == [t["c"], t["a"]]
    assert ids(get("/api/traces", params={"status": "error"})) == [t["b"]]
    assert ids(get("/api/traces", params={"min_latency_ms": 300, "max_latency_ms": 3000})) == [
        t["c"],
        t["b"],
    ]
    assert ids(get("/api/traces", params={"min_cost_usd": 0.1})) == [t["c"]]
    assert ids(get("/api/traces", params={"min_tokens": 1000})) == [t["c"]]
    assert ids(get("/api/traces", params={"q": "ORDER 42"})) == [t["c"]]
    assert ids(get("/api/traces", params={"name": "turn"})) == [t["e"], t["d"]]
    assert ids(get("/api/traces", params={"provider": "openai", "session_id": "s1"})) == [
        t["e"],
        t["d"],
    ]
    window = {
        "start": datetime.fromtimestamp(NOW_S + 15, UTC).isoformat(),
        "end": datetime.fromtimestamp(NOW_S + 91, UTC).isoformat(),
    }
    assert ids(get("/api/traces", params=window)) == [t["d"], t["c"], t["b"]]
    row = get("/api/traces", params={"user_id": "bob"}).json()["data"][0]
    assert row["status"] == "error" and row["duration_ms"] == pytest.approx(2500)
    assert row["input"] == "hello" and row["output"] == "answer to hello"
    assert (row["model"], row["input_tokens"], row["total_tokens"]) == ("gpt-4o-mini", 10, 15)


def test_cursor_pagination_and_sorting(client: TestClient, seeded: dict[str, str]):
    newest_first = [t["trace_id"] for t in walk(client, "/api/traces", 2)]
    assert newest_first == [seeded[k] for k in "fedcba"]
    by_latency = [
        t["trace_id"] for t in walk(client, "/api/traces", 4, sort="latency", order="asc")
    ]
    assert by_latency == [seeded[k] for k in "defacb"]
    response = client.get("/api/traces", params={"cursor": "bm9wZQ"})
    assert response.status_code == 400


def test_trace_tree_and_not_found(client: TestClient, seeded: dict[str, str]):
    trace = client.get(f"/api/traces/{seeded['c']}").json()
    [root] = trace["spans"]
    [llm] = root["children"]
    assert llm["offset_ms"] == pytest.approx(1.0)
    assert llm["duration_ms"] == pytest.approx(398.0)
    assert llm["request_model"] == "claude-3-haiku"
    assert client.get(f"/api/traces/{'0' * 31}1").status_code == 404
    assert client.get("/api/traces/not-hex").status_code == 422


def test_session_lists_its_traces_in_order(client: TestClient, seeded: dict[str, str]):
    session = client.get("/api/sessions/s1").json()
    assert [t["trace_id"] for t in session["traces"]] == [seeded[k] for k in "def"]
    assert client.get("/api/sessions/nope").status_code == 404


def test_aggregates_from_rollups(client: TestClient, seeded: dict[str, str]):
    params = {
        "start": datetime.fromtimestamp(NOW_S, UTC).isoformat(),
        "end": datetime.fromtimestamp(NOW_S + 7200, UTC).isoformat(),
    }
    ungrouped = client.get("/api/traces/aggregates", params=params | {"interval": "hour"})
    assert ungrouped.status_code == 200, ungrouped.text
    body = ungrouped.json()
    assert [(r["count"], r["errors"]) for r in body["data"]] == [(5, 1), (1, 0)]
    [total] = body["totals"]
    assert total["count"] == 6 and total["error_rate"] == pytest.approx(1 / 6)
    assert total["input_tokens"] == 1040 and total["cost_usd"] == pytest.approx(0.504)
    assert 50 <= total["p50_ms"] <= 150
    assert 400 <= total["p95_ms"] <= 3000
    by_model = client.get(
        "/api/traces/aggregates", params=params | {"group_by": "model", "interval": "day"}
    ).json()
    counts = {r["value"]: r["count"] for r in by_model["totals"]}
    assert counts == {"gpt-4o-mini": 4, "claude-3-haiku": 1}
    by_tag = client.get("/api/traces/aggregates", params=params | {"group_by": "tag"}).json()
    assert {r["value"]: r["count"] for r in by_tag["totals"]} == {"beta": 2, "vip": 1}
    by_user = client.get(
        "/api/traces/aggregates", params=params | {"group_by": "user", "value": "ann"}
    ).json()
    assert [(r["value"], r["count"], r["input_tokens"]) for r in by_user["totals"]] == [
        ("ann", 2, 1010)
    ]
    bad = client.get(
        "/api/traces/aggregates", params={"start": params["end"], "end": params["start"]}
    )
    assert bad.status_code == 400


def test_scores_attach_and_filter(client: TestClient, seeded: dict[str, str]):
    posted = client.post(
        "/api/scores",
        json={"trace_id": seeded["a"], "name": "accuracy", "value": 0.9, "comment": "good"},
    )
    assert posted.status_code == 201, posted.text
    assert posted.json()["data_type"] == "numeric" and posted.json()["source"] == "api"
    client.post("/api/scores", json={"trace_id": seeded["b"], "name": "accuracy", "value": 0.2})
    client.post(
        "/api/scores",
        json={"trace_id": seeded["c"], "name": "tone", "value": "rude", "source": "human"},
    )
    ok = client.post(
        "/api/scores", json={"trace_id": seeded["c"], "name": "grounded", "value": True}
    ).json()
    assert (ok["data_type"], ok["value"]) == ("boolean", 1.0)
    assert ids(client.get("/api/traces", params={"score_name": "accuracy", "score_min": 0.5})) == [
        seeded["a"]
    ]
    assert ids(client.get("/api/traces", params={"score_name": "tone", "score_value": "rude"})) == [
        seeded["c"]
    ]
    detail = client.get(f"/api/traces/{seeded['c']}").json()
    assert sorted(s["name"] for s in detail["scores"]) == ["grounded", "tone"]
    bad = client.post("/api/scores", json={"trace_id": "xyz", "name": "n", "value": 1})
    assert bad.status_code == 422
    extra = client.post(
        "/api/scores", json={"trace_id": seeded["a"], "name": "n", "value": 1, "bogus": 1}
    )
    assert extra.status_code == 422


def test_feedback_with_a_write_only_key(
    client: TestClient, runtime: Runtime, seeded: dict[str, str]
):
    public, _ = runtime.keys.create(1, "browser", ["ingest"])
    auth = {"Authorization": f"Bearer {public}"}
    sent = client.post(
        "/api/feedback",
        json={"trace_id": seeded["a"], "value": "down", "comment": "wrong", "user_id": "ann"},
        headers=auth,
    )
    assert sent.status_code == 201, sent.text
    assert (sent.json()["value"], sent.json()["source"]) == (0.0, "feedback")
    assert sent.headers["access-control-allow-origin"] == "*"
    preflight = client.options(
        "/api/feedback",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert "Authorization" in preflight.headers["access-control-allow-headers"]
    assert client.get("/api/traces", headers=auth).status_code == 403
    assert client.get(f"/api/traces/{seeded['a']}", headers=auth).status_code == 403
    assert ids(
        client.get("/api/traces", params={"score_name": "user_feedback", "score_max": 0})
    ) == [seeded["a"]]


def test_projects_are_isolated(client: TestClient, runtime: Runtime, seeded: dict[str, str]):
    project = client.post("/api/projects", json={"name": "other"}).json()
    other, _ = runtime.keys.create(project["id"], "other", ["read", "ingest"])
    auth = {"Authorization": f"Bearer {other}"}
    assert client.get("/api/traces", headers=auth).json()["data"] == []
    assert client.get(f"/api/traces/{seeded['a']}", headers=auth).status_code == 404
    assert client.get("/api/traces", params={"project_id": 1}, headers=auth).status_code == 403
    assert len(ids(client.get("/api/traces", params={"project_id": project["id"]}))) == 0


def test_routes_are_in_the_openapi_document(client: TestClient):
    paths = client.get("/api/openapi.json").json()["paths"]
    for path in (
        "/api/traces",
        "/api/traces/{trace_id}",
        "/api/traces/aggregates",
        "/api/sessions/{session_id}",
        "/api/scores",
        "/api/feedback",
    ):
        assert path in paths, path
