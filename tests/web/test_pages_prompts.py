"""Prompt pages: list, versions, side-by-side diff, label moves (web/pages/prompts.py)."""

from __future__ import annotations

from starlette.testclient import TestClient

from pilothouse.prompts.api import registry_of
from pilothouse.prompts.registry import Actor
from pilothouse.runtime import Runtime
from pilothouse.store import prompts as store
from pilothouse.web.pages.prompts import side_by_side
from tests.web.conftest import csrf

NAME = "support/answer"


def seed_prompt(runtime: Runtime) -> None:
    registry = registry_of(runtime)
    actor = Actor("seed@example.com")
    registry.save(
        1,
        NAME,
        actor=actor,
        prompt_type="text",
        template="You are a helpful assistant.\nAnswer {{question}} briefly.",
        config={"model": "gpt-4o-mini", "temperature": 0.2},
        message="first cut",
        labels=["production"],
        description="Answers support questions",
    )
    registry.save(
        1,
        NAME,
        actor=actor,
        template="You are a precise assistant.\nAnswer {{question}} briefly.\nCite <docs>.",
        config={"model": "gpt-4o-mini", "temperature": 0.0},
        message="be precise",
    )


def _label(runtime: Runtime, label: str) -> int | None:
    with runtime.db.read() as conn:
        prompt = store.get_prompt(conn, 1, NAME)
        row = store.get_label(conn, prompt["id"], label)
    return None if row is None else int(row["version"])


def test_side_by_side_pairs_lines() -> None:
    rows = side_by_side("a\nb\nc", "a\nB\nc\nd")
    assert rows == [
        ("same", "a", "a"),
        ("changed", "b", "B"),
        ("same", "c", "c"),
        ("inserted", "", "d"),
    ]
    assert side_by_side("x", "") == [("deleted", "x", "")]


def test_prompt_list_and_detail(admin: TestClient, runtime: Runtime) -> None:
    seed_prompt(runtime)
    listing = admin.get("/projects/1/prompts")
    assert listing.status_code == 200
    assert NAME in listing.text
    assert "production → v1" in listing.text
    assert "Answers support questions" in listing.text
    assert NAME not in admin.get("/projects/1/prompts?q=nothing-like-it").text
    detail = admin.get(f"/projects/1/prompts/{NAME}")
    assert detail.status_code == 200
    assert "be precise" in detail.text
    assert "Cite &lt;docs&gt;." in detail.text
    assert "Move label" in detail.text
    assert admin.get("/projects/1/prompts/no/such").status_code == 404


def test_diff_shows_two_versions_side_by_side(admin: TestClient, runtime: Runtime) -> None:
    seed_prompt(runtime)
    page = admin.get(f"/projects/1/prompts/{NAME}/diff?from=1&to=2")
    assert page.status_code == 200
    text = page.text
    assert 'class="cell del"' in text and "You are a helpful assistant." in text
    assert 'class="cell ins"' in text and "You are a precise assistant." in text
    assert "Cite &lt;docs&gt;." in text
    assert "temperature" in text
    assert admin.get(f"/projects/1/prompts/{NAME}/diff?from=1&to=9").status_code == 404
    assert admin.get(f"/projects/1/prompts/{NAME}/diff?from=x").status_code == 400


def test_move_a_label_with_confirmation_then_roll_it_back(
    admin: TestClient, runtime: Runtime
) -> None:
    seed_prompt(runtime)
    confirm = admin.get(f"/projects/1/prompts/{NAME}/labels/move?label=production&version=2")
    assert confirm.status_code == 200
    assert "Move “production” of support/answer to version 2?" in confirm.text
    assert _label(runtime, "production") == 1
    moved = admin.post(
        f"/projects/1/prompts/{NAME}/labels/move",
        data={"label": "production", "version": "2", "csrf_token": csrf(confirm.text)},
    )
    assert moved.status_code == 200
    assert "Label “production” moved from v1 to v2." in moved.text
    assert _label(runtime, "production") == 2
    assert registry_of(runtime).resolve(1, NAME, "production").version == 2

    ask = admin.get(f"/projects/1/prompts/{NAME}/labels/rollback?label=production")
    assert "back to version 1?" in ask.text
    rolled = admin.post(
        f"/projects/1/prompts/{NAME}/labels/rollback",
        data={"label": "production", "csrf_token": csrf(ask.text)},
    )
    assert "rolled back from v2 to v1" in rolled.text
    assert _label(runtime, "production") == 1
    assert "admin@localhost" in rolled.text  # the history names who moved it


def test_latest_cannot_be_moved_by_hand(admin: TestClient, runtime: Runtime) -> None:
    seed_prompt(runtime)
    response = admin.get(f"/projects/1/prompts/{NAME}/labels/move?label=latest&version=1")
    assert response.status_code == 400


def test_viewer_reads_prompts_but_cannot_move_labels(viewer: TestClient, runtime: Runtime) -> None:
    seed_prompt(runtime)
    detail = viewer.get(f"/projects/1/prompts/{NAME}")
    assert detail.status_code == 200
    assert "Move label" not in detail.text
    assert "Roll back" not in detail.text
    response = viewer.post(
        f"/projects/1/prompts/{NAME}/labels/move",
        data={"label": "production", "version": "2", "csrf_token": csrf(detail.text)},
    )
    assert response.status_code == 403
    assert _label(runtime, "production") == 1
