"""The console's working tools in a real browser: the prompt playground, the annotation queue,
guardrail decisions (Chromium driven by Playwright against a live server)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from pilothouse.runtime import Runtime
from tests.conftest import ADMIN_PASSWORD
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
