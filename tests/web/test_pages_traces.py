"""Trace list, trace detail, sessions, scores and the dashboard (web/pages/traces.py, home.py)."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

from pilothouse.runtime import Runtime
from pilothouse.store import traces as store
from tests.web.conftest import csrf
from tests.web.seed import export, rag_trace, trace_id_of


def test_trace_list_shows_traces_and_filters_in_the_url(admin: TestClient) -> None:
    first = rag_trace("What is a project?", user="alice")
    second = rag_trace("Reset my password", user="bob", error=True, name="support_flow")
    export(admin, *first, *second)
    page = admin.get("/projects/1/traces")
    assert page.status_code == 200
    assert "What is a project?" in page.text
    assert "Reset my password" in page.text
    assert "gpt-4o-mini" in page.text

    errors = admin.get("/projects/1/traces?status=error")
    assert "Reset my password" in errors.text
    assert "What is a project?" not in errors.text
    assert '<option value="error" selected>' in errors.text

    by_user = admin.get("/projects/1/traces?user_id=alice&range=all")
    assert "What is a project?" in by_user.text
    assert "Reset my password" not in by_user.text
    assert 'name="user_id" value="alice"' in by_user.text

    searched = admin.get("/projects/1/traces?q=password")
    assert "Reset my password" in searched.text
    assert "What is a project?" not in searched.text


def test_trace_list_pages_with_a_cursor(admin: TestClient) -> None:
    from pilothouse.web.pages import traces as pages
    from tests.web import seed

    spans = [s for i in range(pages.PAGE_SIZE + 3) for s in rag_trace(f"question {i}")[:1]]
    seed.export(admin, *spans)
    first = admin.get("/projects/1/traces?sort=latency")
    assert first.text.count('class="row-link"') == pages.PAGE_SIZE
    found = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert found
    second = admin.get(found.group(1).replace("&amp;", "&"))
    assert second.status_code == 200
    assert second.text.count('class="row-link"') == 3
    assert 'rel="next"' not in second.text
    assert "First page" in second.text


def test_bad_filters_are_a_400_page(admin: TestClient) -> None:
    assert admin.get("/projects/1/traces?min_latency_ms=fast").status_code == 400
    assert admin.get("/projects/1/traces?after=%%%").status_code == 400
    assert admin.get("/projects/1/traces?status=maybe").status_code == 400


def test_trace_detail_shows_tree_waterfall_conversation_and_totals(admin: TestClient) -> None:
    spans = rag_trace("How do I rotate an API key?")
    export(admin, *spans)
    page = admin.get(f"/projects/1/traces/{trace_id_of(spans)}")
    assert page.status_code == 200
    text = page.text
    for name in ("answer_question", "retrieve_docs", "chat gpt-4o-mini", "search_web"):
        assert name in text
    assert text.count('class="waterfall-bar"') == 4
    assert "412 / 57" in text  # tokens in / out
    chat_id = spans[2]["spanId"]
    chat = admin.get(f"/projects/1/traces/{trace_id_of(spans)}?span={chat_id}").text
    assert 'class="message role-system"' in chat
    assert "Answer from the docs." in chat
    assert 'class="message role-assistant"' in chat
    assert "412 in / 57 out" in chat


def test_unknown_trace_is_404(admin: TestClient) -> None:
    assert admin.get("/projects/1/traces/" + "0" * 32).status_code == 404
    assert admin.get("/projects/1/traces/not-an-id").status_code == 404


def test_html_in_span_contents_is_escaped(admin: TestClient) -> None:
    evil = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    spans = rag_trace(evil, answer=evil, name=evil)
    export(admin, *spans)
    for url in ("/projects/1/traces", f"/projects/1/traces/{trace_id_of(spans)}"):
        text = admin.get(url).text
        assert "<script>alert" not in text
        assert "<img src=x" not in text
        assert "&lt;script&gt;alert(" in text


def test_add_a_score_from_the_page(admin: TestClient, runtime: Runtime) -> None:
    spans = rag_trace()
    export(admin, *spans)
    url = f"/projects/1/traces/{trace_id_of(spans)}"
    token = csrf(admin.get(url).text)
    response = admin.post(
        url + "/scores",
        data={
            "name": "helpful",
            "value": "0.8",
            "comment": "good <b>answer</b>",
            "csrf_token": token,
        },
    )
    assert response.status_code == 200
    assert "Score “helpful” added." in response.text
    assert "good &lt;b&gt;answer&lt;/b&gt;" in response.text
    admin.post(url + "/scores", data={"name": "label", "value": "great", "csrf_token": token})
    admin.post(url + "/scores", data={"name": "ok", "value": "true", "csrf_token": token})
    with runtime.db.read() as conn:
        scores = store.scores_of(conn, 1, [trace_id_of(spans)])
    assert [(s["name"], s["data_type"], s["value"], s["string_value"]) for s in scores] == [
        ("helpful", "numeric", 0.8, None),
        ("label", "categorical", None, "great"),
        ("ok", "boolean", 1.0, None),
    ]
    assert {s["source"] for s in scores} == {"human"}
    assert {s["author"] for s in scores} == {"admin@localhost"}
    empty = admin.post(url + "/scores", data={"name": "x", "value": "", "csrf_token": token})
    assert empty.status_code == 400


def test_viewer_cannot_score(viewer: TestClient, runtime: Runtime) -> None:
    spans = rag_trace()
    export(viewer, *spans)
    url = f"/projects/1/traces/{trace_id_of(spans)}"
    page = viewer.get(url)
    assert page.status_code == 200
    assert "Add score" not in page.text
    response = viewer.post(
        url + "/scores", data={"name": "x", "value": "1", "csrf_token": csrf(page.text)}
    )
    assert response.status_code == 403
    with runtime.db.read() as conn:
        assert store.scores_of(conn, 1, [trace_id_of(spans)]) == []


def test_session_page_shows_the_conversation(admin: TestClient) -> None:
    export(admin, *rag_trace("first question", "first answer", session="chat-9"))
    export(admin, *rag_trace("second question", "second answer", session="chat-9"))
    page = admin.get("/projects/1/sessions/chat-9")
    assert page.status_code == 200
    assert page.text.index("first question") < page.text.index("second question")
    assert "second answer" in page.text
    assert admin.get("/projects/1/sessions/nope").status_code == 404


def test_dashboard_reads_the_rollups(admin: TestClient) -> None:
    empty = admin.get("/projects/1")
    assert "No traces in the last 24h" in empty.text
    export(admin, *rag_trace(user="alice"), *rag_trace(user="bob", error=True))
    page = admin.get("/projects/1?range=1h")
    assert page.status_code == 200
    assert "No traces in the last" not in page.text
    assert "50.0%" in page.text  # one of two traces failed
    assert "gpt-4o-mini" in page.text  # top models chart
    assert page.text.count('<svg class="chart"') >= 6
    assert admin.get("/projects/1?range=nonsense").status_code == 200


def test_column_headers_sort_the_list(admin: TestClient) -> None:
    export(admin, *rag_trace("first"))
    page = admin.get("/projects/1/traces?sort=latency&order=desc&q=first")
    assert 'aria-sort="descending"' in page.text
    assert "sort=latency&amp;order=asc" in page.text  # clicking again reverses
    assert "q=first" in page.text  # other filters are kept
