"""The console in a real browser: Chromium driven by Playwright against a live server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from pilothouse.runtime import Runtime
from pilothouse.store import identity as store
from tests.conftest import ADMIN_PASSWORD, LiveServer
from tests.web.browser import chromium, screenshot
from tests.web.conftest import ADMIN_EMAIL, VIEWER_EMAIL, VIEWER_PASSWORD, add_user

__all__ = ["chromium"]

# Browser flows run on SQLite; the storage behind them is tested on both backends elsewhere.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def tab(chromium: Browser, live_server: LiveServer) -> Iterator[Page]:
    context = chromium.new_context(
        base_url=live_server.url, viewport={"width": 1280, "height": 800}, color_scheme="light"
    )
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        yield page
    finally:
        context.close()


def sign_in(page: Page, email: str, password: str) -> None:
    page.goto("/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_sign_in_create_and_revoke_an_api_key(tab: Page, runtime: Runtime) -> None:
    tab.goto("/")
    expect(tab.get_by_role("heading", name="Sign in to Pilothouse")).to_be_visible()
    screenshot(tab, "login")
    sign_in(tab, ADMIN_EMAIL, ADMIN_PASSWORD)
    expect(tab.get_by_role("heading", name="default")).to_be_visible()
    screenshot(tab, "home")

    tab.get_by_role("navigation", name="Project").get_by_role("link", name="Settings").click()
    tab.get_by_label("Name").fill("checkout service")
    tab.get_by_label("read").check()
    tab.get_by_role("button", name="Create key").click()
    expect(tab.get_by_text("Key “checkout service” created")).to_be_visible()
    key = tab.locator("#new-key").inner_text().strip()
    assert runtime.keys.verify(key).name == "checkout service"
    screenshot(tab, "settings-keys")

    row = tab.get_by_role("row").filter(has_text="checkout service")
    row.get_by_role("link", name="Revoke").click()
    expect(tab.get_by_role("heading", name="Revoke the key “checkout service”?")).to_be_visible()
    tab.get_by_role("button", name="Revoke key").click()
    expect(tab.get_by_text("Key “checkout service” revoked.")).to_be_visible()
    expect(tab.get_by_role("row").filter(has_text="checkout service")).to_contain_text("revoked")
    assert runtime.keys.lookup(key) is None

    tab.get_by_role("link", name="Members").click()
    expect(tab.get_by_role("cell", name=ADMIN_EMAIL, exact=True)).to_be_visible()
    screenshot(tab, "settings-members")


def test_viewer_sees_no_edit_buttons_and_the_server_refuses_edits(
    tab: Page, runtime: Runtime
) -> None:
    add_user(runtime, VIEWER_EMAIL, VIEWER_PASSWORD, "viewer")
    sign_in(tab, VIEWER_EMAIL, VIEWER_PASSWORD)
    tab.goto("/projects/1/settings/members")
    expect(tab.get_by_role("cell", name=VIEWER_EMAIL, exact=True)).to_be_visible()
    expect(tab.get_by_role("button", name="Remove")).to_have_count(0)
    expect(tab.get_by_role("button", name="Add")).to_have_count(0)
    tab.goto("/projects/1/settings/keys")
    expect(tab.get_by_role("button", name="Create key")).to_have_count(0)
    expect(tab.get_by_text("Only project admins and owners")).to_be_visible()

    token = tab.locator("input[name=csrf_token]").first.input_value()
    response = tab.request.post(
        "/projects/1/settings/keys",
        form={"name": "sneaky", "scope_admin": "1", "csrf_token": token},
    )
    assert response.status == 403
    with runtime.db.read() as conn:
        assert [k["name"] for k in store.page(conn, store.api_keys)[0]] == ["admin"]


def test_a_post_without_the_csrf_token_is_rejected(tab: Page, runtime: Runtime) -> None:
    sign_in(tab, ADMIN_EMAIL, ADMIN_PASSWORD)
    response = tab.request.post(
        "/projects/1/settings/keys", form={"name": "no-token", "scope_read": "1"}
    )
    assert response.status == 403
    assert "security token" in response.text()
    with runtime.db.read() as conn:
        assert len(store.page(conn, store.api_keys)[0]) == 1


def test_html_in_names_is_shown_as_text_and_never_runs(tab: Page, runtime: Runtime) -> None:
    payload = "<script>window.__pwned = 1</script><img src=x onerror=window.__pwned=2>"
    runtime.keys.create(1, payload, ["read"])
    with runtime.db.write() as conn:
        store.create_project(conn, 1, payload)
    dialogs: list[Any] = []
    tab.on("dialog", lambda dialog: dialogs.append(dialog.message))
    sign_in(tab, ADMIN_EMAIL, ADMIN_PASSWORD)
    tab.goto("/projects/1/settings/keys")
    expect(tab.get_by_role("cell", name=payload)).to_be_visible()
    assert tab.evaluate("window.__pwned") is None
    assert tab.locator("img[src=x]").count() == 0
    assert dialogs == []


def test_keyboard_reaches_the_skip_link_and_the_project_switcher(tab: Page) -> None:
    sign_in(tab, ADMIN_EMAIL, ADMIN_PASSWORD)
    tab.keyboard.press("Tab")
    expect(tab.get_by_role("link", name="Skip to content")).to_be_focused()
    tab.keyboard.press("Enter")
    expect(tab.locator("#main")).to_be_focused()
