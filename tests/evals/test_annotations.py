"""Annotation queues: claims, rubric-checked annotations, scores on traces, agreement."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
from starlette.testclient import TestClient

from pilothouse.app import create_app
from pilothouse.evals.annotations import cohen_kappa
from pilothouse.runtime import Runtime
from pilothouse.store import traces as trace_store
from pilothouse.tracing.model import Span
from tests.conftest import ADMIN_KEY


def test_cohen_kappa_matches_textbook_values():
    # 50 items: both yes 20, both no 15, A yes/B no 5, A no/B yes 10 -> kappa 0.4
    pairs = [("y", "y")] * 20 + [("n", "n")] * 15 + [("y", "n")] * 5 + [("n", "y")] * 10
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([("a", "a"), ("b", "b")]) == 1.0
    assert cohen_kappa([("a", "a"), ("a", "a")]) == 1.0
    assert cohen_kappa([("a", "b"), ("b", "a")]) == pytest.approx(-1.0)
    assert cohen_kappa([]) is None


def _trace(runtime: Runtime) -> str:
    trace_id = secrets.token_hex(16)
    now = time.time_ns()
    runtime.traces.write_sync(
        [Span(project_id=1, trace_id=trace_id, span_id=secrets.token_hex(8), name="chat",
              start_time_ns=now, end_time_ns=now + 1000, input="hi", output="hello")]
    )  # fmt: skip
    return trace_id


class Reviewer:
    """One client of the app, as one reviewer (one lifespan for both reviewers)."""

    def __init__(self, client: TestClient, key: str) -> None:
        self.client, self.headers = client, {"Authorization": f"Bearer {key}"}

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, headers=self.headers, **kw)

    def post(self, url: str, **kw: Any) -> Any:
        return self.client.post(url, headers=self.headers, **kw)


def test_two_reviewers_annotate_and_agreement_is_reported(runtime: Runtime):
    second_key, _ = runtime.keys.create(1, "reviewer-2", ["read", "write"])
    with TestClient(create_app(runtime)) as client:
        first = Reviewer(client, ADMIN_KEY)
        second = Reviewer(client, second_key)
        queue = first.post(
            "/api/annotation-queues",
            json={
                "name": "helpfulness",
                "reviewers_per_item": 2,
                "score_configs": [
                    {"name": "helpful", "type": "boolean"},
                    {"name": "quality", "type": "numeric", "min": 1, "max": 5},
                    {"name": "tone", "type": "categorical", "categories": ["ok", "rude"]},
                ],
            },
        )
        assert queue.status_code == 201, queue.text
        qid = queue.json()["id"]
        traces = [_trace(runtime) for _ in range(4)]
        first.post("/api/datasets", json={"name": "ds", "items": [{"input": "q", "expected": "a"}]})
        added = first.post(f"/api/annotation-queues/{qid}/items",
                           json={"trace_ids": traces, "dataset": "ds"})  # fmt: skip
        assert added.json() == {"added": 5}
        again = first.post(f"/api/annotation-queues/{qid}/items",
                           json={"trace_ids": [traces[0].upper()], "dataset": "ds"})  # fmt: skip
        assert again.json() == {"added": 0}  # what the queue holds is not queued twice
        verdicts = {0: (True, True), 1: (True, False), 2: (False, False), 3: (True, True)}
        held = first.post(f"/api/annotation-queues/{qid}/claim").json()
        other = second.post(f"/api/annotation-queues/{qid}/claim").json()
        # While an item is claimed, the other reviewer gets a different one; a reviewer who
        # claims again gets the item they hold.
        assert held["id"] != other["id"]
        assert first.post(f"/api/annotation-queues/{qid}/claim").json()["id"] == held["id"]
        seen: dict[int, list[int]] = {0: [], 1: []}
        # Reviewers take turns until neither has anything left (an item the other holds
        # becomes available once it is annotated).
        for who, reviewer in ((0, first), (1, second), (0, first)):
            while True:
                claimed = reviewer.post(f"/api/annotation-queues/{qid}/claim")
                if claimed.status_code == 204:
                    break
                item = claimed.json()
                index = traces.index(item["trace_id"]) if item["trace_id"] else 4
                if index == 4:
                    assert item["dataset_item"]["input"] == "q"
                else:
                    assert item["trace"]["output"] is not None
                helpful = verdicts.get(index, (True, True))[who]
                answer = reviewer.post(
                    f"/api/annotation-queues/{qid}/items/{item['id']}/annotations",
                    json={"scores": {"helpful": helpful, "quality": 4, "tone": "ok"}},
                )
                assert answer.status_code == 201, answer.text
                seen[who].append(item["id"])
        seen_first = seen[0]
        assert sorted(seen[0]) == sorted(seen[1]) and len(set(seen[0])) == 5
        # Each reviewer annotated each item once; nothing is left.
        assert len(set(seen_first)) == 5
        assert first.post(f"/api/annotation-queues/{qid}/claim").status_code == 204
        again = first.post(
            f"/api/annotation-queues/{qid}/items/{seen_first[0]}/annotations",
            json={"scores": {"helpful": True}},
        )
        assert again.status_code == 409
        bad = first.post(
            f"/api/annotation-queues/{qid}/items/{seen_first[0]}/annotations",
            json={"scores": {"quality": 9}},
        )
        assert bad.status_code == 400 and "between 1" in bad.json()["detail"]
        result = first.get(f"/api/annotation-queues/{qid}/agreement").json()
        assert result["items"] == {"done": 5}
        helpful = result["scores"]["helpful"]
        assert helpful["pairs"] == 5 and helpful["percent_agreement"] == 0.8
        assert helpful["cohen_kappa"] == pytest.approx(cohen_kappa(
            [(True, True), (True, False), (False, False), (True, True), (True, True)]
        ))  # fmt: skip
        assert result["scores"]["tone"]["cohen_kappa"] == 1.0
        listed = first.get("/api/annotation-queues").json()
        assert listed[0]["items"] == {"done": 5}
    with runtime.db.read() as conn:
        scores = trace_store.scores_of(conn, 1, traces[:1])
    assert {(s["name"], s["source"]) for s in scores} == {
        ("helpful", "annotation"), ("quality", "annotation"), ("tone", "annotation"),
    }  # fmt: skip
    assert len(scores) == 6
