"""The console's working tools in a real browser: the prompt playground, the annotation queue,
guardrail decisions (Chromium driven by Playwright against a live server)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from pilothouse.runtime import Runtime
from tests.conftest import ADMIN_PASSWORD, LiveServer
from tests.web.browser import chromium, screenshot, sign_in, tab
from tests.web.conftest import ADMIN_EMAIL

__all__ = ["chromium", "tab"]

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_run_the_playground_against_the_mock_model(tab: Page, runtime: Runtime) -> None:
    from tests.web.test_pages_playground import NAME, seed

    seed(runtime)
    sign_in(tab, ADMIN_EMAIL, ADMIN_PASSWORD)
    tab.goto(f"/projects/1/prompts/{NAME}")
    tab.locator("#v1").get_by_role("link", name="Playground").click()
    expect(tab.get_by_role("heading", name=f"Playground: {NAME} v1")).to_be_visible()
    tab.get_by_label("question").fill("how do I <b>rotate</b> a key")
    tab.get_by_label("Model").select_option("mock/echo")
    with tab.expect_response(lambda r: r.url.endswith("/playground/stream")) as streamed:
        tab.get_by_role("button", name="Run").click()
    assert streamed.value.headers["content-type"].startswith("text/event-stream")
    # The page did not reload: the script read the stream and wrote the answer as it came.
    expect(tab).to_have_url(f"{tab.url.split('?')[0]}?version=1")
    answer = tab.locator("#playground-answer")
    expect(answer).to_have_text("Answer how do I <b>rotate</b> a key briefly.")
    expect(tab.get_by_role("status")).to_contain_text("8 tokens in, 8 out")
    expect(tab.locator("#playground-rendered .message")).to_have_count(1)
    assert tab.locator("#playground-answer b").count() == 0  # shown as text, never as HTML
    screenshot(tab, "prompt-playground")


def test_the_playground_works_without_javascript(
    chromium: object, live_server: object, runtime: Runtime
) -> None:
    from tests.web.test_pages_playground import NAME, seed

    seed(runtime)
    context = chromium.new_context(  # type: ignore[attr-defined]
        base_url=live_server.url,  # type: ignore[attr-defined]
        java_script_enabled=False,
    )
    try:
        page = context.new_page()
        sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
        page.goto(f"/projects/1/prompts/{NAME}/playground?version=1")
        page.get_by_label("question").fill("why")
        page.get_by_role("button", name="Run").click()
        expect(page.locator("#playground-answer")).to_have_text("Answer why briefly.")
    finally:
        context.close()


def test_score_an_annotation_item_with_the_keyboard(
    tab: Page, live_server: LiveServer, runtime: Runtime
) -> None:
    import httpx

    from tests.web.test_pages_review import seed_queue

    with httpx.Client(base_url=live_server.url) as client:
        queue_id, _ = seed_queue(runtime, client, traces=3)
    sign_in(tab, ADMIN_EMAIL, ADMIN_PASSWORD)
    tab.get_by_role("navigation", name="Project").get_by_role("link", name="Review").click()
    expect(tab.get_by_role("row").filter(has_text="support answers")).to_contain_text("0 of 3 done")
    tab.get_by_role("link", name="support answers").click()
    tab.get_by_role("button", name="Start reviewing").click()
    expect(tab.get_by_text("0 of 3 done")).to_be_visible()
    expect(tab.get_by_text("Question 0 <i>?</i>").first).to_be_visible()
    screenshot(tab, "annotation-item")

    tab.locator("body").press("4")  # helpful: 4, then "grounded" is the active criterion
    tab.locator("body").press("y")
    expect(tab.get_by_label("4", exact=True)).to_be_checked()
    expect(tab.get_by_label("Yes")).to_be_checked()
    tab.locator("body").press("Enter")
    expect(tab.get_by_text("Scores saved.")).to_be_visible()
    expect(tab.get_by_text("1 of 3 done")).to_be_visible()
    expect(tab.get_by_text("Question 1 <i>?</i>").first).to_be_visible()
    with runtime.db.read() as conn:
        from pilothouse.store import annotations as store

        assert store.counts(conn, queue_id) == {"done": 1, "pending": 2}


def test_create_a_queue_and_queue_a_trace_from_its_page(
    tab: Page, live_server: LiveServer, runtime: Runtime
) -> None:
    import httpx

    from tests.web.seed import export, rag_trace, trace_id_of

    spans = rag_trace(question="Is it open?", answer="Yes")
    with httpx.Client(base_url=live_server.url) as client:
        export(client, *spans)
    sign_in(tab, ADMIN_EMAIL, ADMIN_PASSWORD)
    tab.get_by_role("navigation", name="Project").get_by_role("link", name="Review").click()
    tab.get_by_label("Name").fill("opening hours")
    tab.get_by_label("Rubric").fill("helpful: 1-5: 5 answers it all\ngrounded: yes/no")
    tab.get_by_label("Reviewers per item").fill("2")
    screenshot(tab, "annotation-new-queue")
    tab.get_by_role("button", name="Create queue").click()
    expect(tab.get_by_text("Queue “opening hours” created.")).to_be_visible()
    expect(tab.get_by_role("row").filter(has_text="helpful")).to_contain_text(
        re.compile(r"numeric \(1\W5\)")
    )

    tab.goto(f"/projects/1/traces/{trace_id_of(spans)}")
    tab.get_by_label("Review queue").select_option(label="opening hours")
    tab.get_by_role("button", name="Add to review queue").click()
    expect(tab.get_by_text("Added 1 item to “opening hours”.")).to_be_visible()
    tab.get_by_role("navigation", name="Project").get_by_role("link", name="Review").click()
    expect(tab.get_by_role("row").filter(has_text="opening hours")).to_contain_text("0 of 1 done")


def test_filter_guardrail_decisions(tab: Page, runtime: Runtime) -> None:
    from tests.web.test_pages_guardrail_decisions import INJECTION, SECRET, gateway_calls

    gateway_calls(runtime, [SECRET, "hello there", INJECTION, "mail me at ada@example.com"])
    sign_in(tab, ADMIN_EMAIL, ADMIN_PASSWORD)
    tab.get_by_role("navigation", name="Project").get_by_role("link", name="Guardrails").click()
    tab.get_by_role("link", name="Recent decisions »").click()
    rows = tab.get_by_role("region", name="Recent decisions").locator("tbody tr")
    expect(rows).to_have_count(4)
    per_check = tab.get_by_role("region", name="Fired, per check")
    expect(per_check.get_by_role("row").filter(has_text="secrets")).to_contain_text("1")
    screenshot(tab, "guardrail-decisions")
    tab.get_by_label("Verdict", exact=True).select_option("block")
    tab.get_by_role("button", name="Apply").click()
    expect(tab).to_have_url(re.compile(r"verdict=block"))
    expect(rows).to_have_count(2)
    rows.first.get_by_role("link").click()
    expect(tab).to_have_url(re.compile(r"/traces/[0-9a-f]{32}\?span=[0-9a-f]{16}$"))
    expect(tab.locator(".pill-bad").first).to_have_text("error")  # the blocked call failed
