"""Annotation queue pages: queues, progress, scoring items by the rubric
(web/pages/review.py)."""

from __future__ import annotations

import re
from typing import Any

from starlette.testclient import TestClient

from pilothouse.runtime import Runtime
from pilothouse.store import annotations as store
from pilothouse.store import traces as trace_store
from tests.web.conftest import csrf
from tests.web.seed import export, rag_trace, trace_id_of

RUBRIC = [
    {"name": "helpful", "type": "numeric", "min": 1, "max": 5, "description": "1 bad, 5 great"},
    {"name": "grounded", "type": "boolean"},
    {"name": "tone", "type": "categorical", "categories": ["formal", "casual"]},
]


def seed_queue(runtime: Runtime, client: Any, traces: int = 3) -> tuple[int, list[str]]:
    """A queue of ``traces`` RAG traces (sent through ingestion) with a three-part rubric."""
    ids = []
    for n in range(traces):
        spans = rag_trace(question=f"Question {n} <i>?</i>", answer=f"Answer {n}")
        export(client, *spans)
        ids.append(trace_id_of(spans))
    with runtime.db.write() as conn:
        queue = store.create_queue(
            conn,
            project_id=1,
            name="support answers",
            description="Weekly review",
            score_configs=RUBRIC,
            reviewers_per_item=1,
        )
        store.add_items(conn, queue["id"], [{"trace_id": t, "dataset_item_id": None} for t in ids])
    return int(queue["id"]), ids


def start(client: TestClient, queue_id: int) -> str:
    """Press "Start reviewing"; the URL of the item claimed."""
    page = client.get(f"/projects/1/annotations/{queue_id}")
    response = client.post(
        f"/projects/1/annotations/{queue_id}/next",
        data={"csrf_token": csrf(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    return str(response.headers["location"])


def test_queue_list_and_page_show_progress(admin: TestClient, runtime: Runtime) -> None:
    queue_id, _ = seed_queue(runtime, admin)
    listing = admin.get("/projects/1/annotations")
    assert listing.status_code == 200
    assert "support answers" in listing.text and "0 of 3 done" in listing.text
    page = admin.get(f"/projects/1/annotations/{queue_id}")
    assert "Start reviewing" in page.text and "1 bad, 5 great" in page.text
    assert admin.get("/projects/1/annotations/999").status_code == 404


def test_score_an_item_then_the_next_one_comes(admin: TestClient, runtime: Runtime) -> None:
    queue_id, ids = seed_queue(runtime, admin)
    url = start(admin, queue_id)
    assert re.search(rf"/annotations/{queue_id}/items/\d+$", url)
    page = admin.get(url)
    assert page.status_code == 200
    assert "Question 0 &lt;i&gt;?&lt;/i&gt;" in page.text and "<i>?</i>" not in page.text
    assert 'data-key="5"' in page.text and 'data-key="y"' in page.text
    response = admin.post(
        url,
        data={
            "csrf_token": csrf(page.text),
            "score.helpful": "4",
            "score.grounded": "true",
            "score.tone": "",
            "comment": "good",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] != url  # the next item, already claimed
    following = admin.get(response.headers["location"])
    assert "1 of 3 done" in following.text and "Question 1" in following.text
    with runtime.db.read() as conn:
        assert store.counts(conn, queue_id) == {"done": 1, "pending": 2}
        scores = conn.execute(
            trace_store.scores.select().where(trace_store.scores.c.trace_id == ids[0])
        ).mappings()
        got = {s["name"]: (s["value"], s["source"], s["comment"]) for s in scores}
    assert got == {"helpful": (4.0, "annotation", "good"), "grounded": (1.0, "annotation", "good")}
    again = admin.get(url)
    assert "You reviewed this item" in again.text


def test_bad_scores_are_a_400(admin: TestClient, runtime: Runtime) -> None:
    queue_id, _ = seed_queue(runtime, admin, traces=1)
    url = start(admin, queue_id)
    token = csrf(admin.get(url).text)
    assert admin.post(url, data={"csrf_token": token}).status_code == 400
    assert admin.post(url, data={"csrf_token": token, "score.helpful": "9"}).status_code == 400
    assert admin.post(url, data={"csrf_token": token, "score.tone": "rude"}).status_code == 400


def test_the_last_item_returns_to_the_queue(admin: TestClient, runtime: Runtime) -> None:
    queue_id, _ = seed_queue(runtime, admin, traces=1)
    url = start(admin, queue_id)
    token = csrf(admin.get(url).text)
    response = admin.post(
        url, data={"csrf_token": token, "score.grounded": "false"}, follow_redirects=False
    )
    assert response.headers["location"] == f"/projects/1/annotations/{queue_id}"
    page = admin.get(response.headers["location"])
    assert "reviewed every item open to you" in page.text and "1 of 1 done" in page.text
    empty = admin.post(
        f"/projects/1/annotations/{queue_id}/next",
        data={"csrf_token": csrf(page.text)},
    )
    assert "Nothing left for you to review" in empty.text


def test_viewer_reads_but_cannot_review(viewer: TestClient, runtime: Runtime) -> None:
    queue_id, _ = seed_queue(runtime, viewer, traces=1)
    page = viewer.get(f"/projects/1/annotations/{queue_id}")
    assert page.status_code == 200 and "Start reviewing" not in page.text
    token = csrf(page.text)
    assert (
        viewer.post(
            f"/projects/1/annotations/{queue_id}/next", data={"csrf_token": token}
        ).status_code
        == 403
    )
    with runtime.db.write() as conn:
        item = store.claim_next(conn, store.get_queue(conn, queue_id), "someone")
    assert item is not None
    item_url = f"/projects/1/annotations/{queue_id}/items/{item['id']}"
    assert "Save and next" not in viewer.get(item_url).text
    refused = viewer.post(item_url, data={"csrf_token": token, "score.grounded": "true"})
    assert refused.status_code == 403
    assert viewer.post(item_url, data={"score.grounded": "true"}).status_code == 403
