"""Annotation queue pages: queues, progress, scoring items by the rubric
(web/pages/review.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.testclient import TestClient

from pilothouse.errors import BadRequest
from pilothouse.evals.api import datasets_of
from pilothouse.runtime import Runtime
from pilothouse.store import annotations as store
from pilothouse.store import traces as trace_store
from pilothouse.web.pages import review
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


def test_rubric_lines_become_score_configs() -> None:
    configs = review.rubric(
        "helpful: 1-5: 1 useless: 5 great\n\n grounded : yes/no\n"
        "tone: formal, casual\nscore: number"
    )
    assert configs == [
        {
            "name": "helpful",
            "description": "1 useless: 5 great",
            "type": "numeric",
            "min": 1.0,
            "max": 5.0,
        },
        {"name": "grounded", "description": "", "type": "boolean"},
        {
            "name": "tone",
            "description": "",
            "type": "categorical",
            "categories": ["formal", "casual"],
        },
        {"name": "score", "description": "", "type": "numeric"},
    ]
    for bad, why in [
        ("helpful", "give a kind"),
        ("helpful: 5-1", "from low to high"),
        ("ok\ntone: formal", "rubric line 1"),
        ("tone: formal,", "two or more names"),
    ]:
        with pytest.raises(BadRequest, match=why):
            review.rubric(bad)


def test_create_a_queue_then_add_a_trace_and_a_dataset(admin: TestClient, runtime: Runtime) -> None:
    listing = admin.get("/projects/1/annotations")
    assert "New queue" in listing.text
    created = admin.post(
        "/projects/1/annotations",
        data={
            "csrf_token": csrf(listing.text),
            "name": "answers",
            "rubric": "helpful: 1-5\ngrounded: yes/no",
            "reviewers_per_item": "2",
        },
        follow_redirects=False,
    )
    assert created.status_code == 303
    queue_id = int(created.headers["location"].rsplit("/", 1)[1])
    with runtime.db.read() as conn:
        queue = store.get_queue(conn, queue_id)
    assert queue["reviewers_per_item"] == 2
    assert [c["type"] for c in queue["score_configs"]] == ["numeric", "boolean"]

    spans = rag_trace(question="Where?", answer="Here")
    export(admin, *spans)
    trace_id = trace_id_of(spans)
    trace_page = admin.get(f"/projects/1/traces/{trace_id}")
    assert "Add to review queue" in trace_page.text
    form = {"csrf_token": csrf(trace_page.text), "queue_id": str(queue_id), "trace_id": trace_id}
    added = admin.post("/projects/1/annotations/items", data=form)
    assert "Added 1 item to “answers”" in added.text
    again = admin.post("/projects/1/annotations/items", data=form)
    assert "already in “answers”" in again.text

    datasets_of(runtime).create(1, "faq", items=[{"input": "a"}, {"input": "b"}], description="")
    queue_page = admin.get(f"/projects/1/annotations/{queue_id}")
    assert "<option>faq</option>" in queue_page.text
    token = csrf(queue_page.text)
    response = admin.post(
        "/projects/1/annotations/items",
        data={"csrf_token": token, "queue_id": str(queue_id), "dataset": "faq"},
    )
    assert "Added 2 items" in response.text and "0 of 3 done" in response.text
    with runtime.db.read() as conn:
        assert store.counts(conn, queue_id) == {"pending": 3}


def test_bad_queue_forms_are_a_400(admin: TestClient, runtime: Runtime) -> None:
    token = csrf(admin.get("/projects/1/annotations").text)
    form = {"csrf_token": token, "name": "q", "rubric": "a: yes/no\na: 1-3"}
    duplicate = admin.post("/projects/1/annotations", data=form)
    assert duplicate.status_code == 400 and "names must be unique" in duplicate.text
    form.update(rubric="a: yes/no", reviewers_per_item="11")
    assert admin.post("/projects/1/annotations", data=form).status_code == 400
    form.update(reviewers_per_item="1", name="")
    assert admin.post("/projects/1/annotations", data=form).status_code == 400
    queue_id, _ = seed_queue(runtime, admin, traces=1)
    add = "/projects/1/annotations/items"
    assert admin.post(add, data={"csrf_token": token, "queue_id": str(queue_id)}).status_code == 400
    missing = {"csrf_token": token, "queue_id": str(queue_id), "trace_id": "ab" * 16}
    assert admin.post(add, data=missing).status_code == 404
    other = {"csrf_token": token, "queue_id": "999", "dataset": "faq"}
    assert admin.post(add, data=other).status_code == 404


def test_viewer_cannot_create_or_fill_queues(viewer: TestClient, runtime: Runtime) -> None:
    queue_id, _ = seed_queue(runtime, viewer, traces=1)
    listing = viewer.get("/projects/1/annotations")
    assert "New queue" not in listing.text
    token = csrf(viewer.get(f"/projects/1/annotations/{queue_id}").text)
    form = {"csrf_token": token, "name": "q", "rubric": "a: yes/no"}
    assert viewer.post("/projects/1/annotations", data=form).status_code == 403
    add = {"csrf_token": token, "queue_id": str(queue_id), "dataset": "faq"}
    assert viewer.post("/projects/1/annotations/items", data=add).status_code == 403
