"""Prompts: the list, one prompt's versions and labels, side-by-side diffs, label moves.

Reads use the prompt store's queries (:mod:`pilothouse.store.prompts`); label moves and
rollbacks go through the registry (:mod:`pilothouse.prompts.registry`), which records who moved
what and empties the render cache. Every move asks for confirmation on a page of its own.
"""

from __future__ import annotations

import difflib
from urllib.parse import quote, urlencode

from starlette.responses import Response

from pilothouse.errors import BadRequest
from pilothouse.prompts import model
from pilothouse.prompts.api import registry_of
from pilothouse.prompts.registry import Actor
from pilothouse.store import prompts as store
from pilothouse.web.ui import Page

PAGE_SIZE = 50
HISTORY = 20


def _name(page: Page) -> str:
    return model.check_name(page.request.path_params["name"])


def prompt_url(page: Page, name: str, suffix: str = "") -> str:
    return page.url("/prompts/" + quote(name, safe="/") + suffix)


def prompt_list(page: Page) -> Response:
    page.require("read")
    search = page.query("q").strip()[:200] or None
    after = page.query("after").strip()[:200] or None
    with page.runtime.db.read() as conn:
        rows, last = store.list_prompts(
            conn, page.project_id, search=search, after=after, limit=PAGE_SIZE
        )
        labels = store.labels_of(conn, [r["id"] for r in rows])
        latest = {r["id"]: labels[r["id"]].get(model.LATEST) for r in rows}
    next_url = None
    if last is not None:
        next_url = page.url("/prompts") + "?" + urlencode({"q": search or "", "after": last})
    return page.render(
        "prompts/list.html",
        prompts=rows,
        labels=labels,
        latest=latest,
        search=search or "",
        next_url=next_url,
        prompt_url=lambda name: prompt_url(page, name),
    )


def prompt_detail(page: Page) -> Response:
    """A prompt's versions (newest first), its labels and their history."""
    page.require("read")
    name = _name(page)
    before_raw = page.query("before")
    before = int(before_raw) if before_raw.isdigit() else None
    with page.runtime.db.read() as conn:
        prompt = store.get_prompt(conn, page.project_id, name)
        versions, more = store.list_versions(conn, prompt["id"], before=before, limit=PAGE_SIZE)
        labels = store.label_rows(conn, prompt["id"])
        events, _ = store.label_events(conn, prompt["id"], limit=HISTORY)
    by_version: dict[int, list[str]] = {}
    for label in labels:
        by_version.setdefault(label["version"], []).append(label["name"])
    newest = versions[0]["version"] if versions else 0
    return page.render(
        "prompts/detail.html",
        prompt=prompt,
        versions=versions,
        labels=labels,
        by_version=by_version,
        events=events,
        older_url=prompt_url(page, name, f"?before={more}") if more else None,
        newest=newest,
        template_text=model.template_text,
        prompt_url=lambda suffix="": prompt_url(page, name, suffix),
    )


def side_by_side(old: str, new: str) -> list[tuple[str, str, str]]:
    """Rows of (kind, left line, right line); kind is same, changed, deleted or inserted."""
    a, b = old.splitlines(), new.splitlines()
    rows: list[tuple[str, str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            rows.extend(
                ("same", a[i], b[j]) for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            )
        elif op == "delete":
            rows.extend(("deleted", a[i], "") for i in range(i1, i2))
        elif op == "insert":
            rows.extend(("inserted", "", b[j]) for j in range(j1, j2))
        else:
            left, right = a[i1:i2], b[j1:j2]
            for k in range(max(len(left), len(right))):
                rows.append(
                    (
                        "changed",
                        left[k] if k < len(left) else "",
                        right[k] if k < len(right) else "",
                    )
                )
    return rows


def _version_arg(page: Page, name: str, default: int) -> int:
    raw = page.query(name)
    if not raw:
        return default
    if not raw.isdigit():
        raise BadRequest(f"{name} must be a version number", param=name)
    return int(raw)


def prompt_diff(page: Page) -> Response:
    """Two versions side by side: template lines, then the model config."""
    page.require("read")
    name = _name(page)
    with page.runtime.db.read() as conn:
        prompt = store.get_prompt(conn, page.project_id, name)
        newest = store.latest_version(conn, prompt["id"])
        top = newest["version"] if newest is not None else 1
        to_v = _version_arg(page, "to", top)
        from_v = _version_arg(page, "from", max(1, to_v - 1))
        old = store.get_version(conn, prompt["id"], from_v, name)
        new = store.get_version(conn, prompt["id"], to_v, name)
        versions, _ = store.list_versions(conn, prompt["id"], limit=200)
    rows = side_by_side(model.template_text(old["template"]), model.template_text(new["template"]))
    return page.render(
        "prompts/diff.html",
        prompt=prompt,
        old=old,
        new=new,
        versions=[v["version"] for v in versions],
        rows=rows,
        identical=all(kind == "same" for kind, _, _ in rows),
        config_changes=model.config_changes(old["config"], new["config"]),
        prompt_url=lambda suffix="": prompt_url(page, name, suffix),
    )


def move_label(page: Page) -> Response:
    """GET: confirm moving a label to a version. POST: move it (recorded in the history)."""
    principal = page.require("write")
    name = _name(page)
    source = page.form if page.is_post else page.request.query_params
    label = model.check_label(str(source.get("label", "")).strip())
    raw = str(source.get("version", ""))
    if not raw.isdigit():
        raise BadRequest("choose a version", param="version")
    version = int(raw)
    if label == model.LATEST:
        raise BadRequest("'latest' moves by itself when a version is saved", param="label")
    with page.runtime.db.read() as conn:
        prompt = store.get_prompt(conn, page.project_id, name)
        store.get_version(conn, prompt["id"], version, name)
        current = store.get_label(conn, prompt["id"], label)
    if not page.is_post:
        where = f"from version {current['version']} " if current is not None else ""
        return page.render(
            "confirm.html",
            heading=f"Move “{label}” of {name} to version {version}?",
            message=(
                f"Everything that asks for {name}@{label} gets version {version} {where}"
                "within seconds. The move is recorded and can be rolled back."
            ),
            action=prompt_url(page, name, "/labels/move"),
            fields={"label": label, "version": version},
            confirm_label=f"Move {label} to v{version}",
            cancel=prompt_url(page, name),
        )
    reason = page.form.get("reason", "").strip()[:500]
    before, after = registry_of(page.runtime).move_label(
        page.project_id, name, label, version, actor=Actor.of(principal), reason=reason
    )
    moved = f"from v{before} " if before is not None else ""
    return page.redirect(prompt_url(page, name), f"Label “{label}” moved {moved}to v{after}.")


def rollback_label(page: Page) -> Response:
    """GET: confirm rolling a label back to where it was. POST: roll it back."""
    principal = page.require("write")
    name = _name(page)
    source = page.form if page.is_post else page.request.query_params
    label = model.check_label(str(source.get("label", "")).strip())
    with page.runtime.db.read() as conn:
        prompt = store.get_prompt(conn, page.project_id, name)
        last = store.last_move(conn, prompt["id"], label)
    if last is None or last["from_version"] is None:
        raise BadRequest(f"label {label!r} has no earlier version to roll back to", param="label")
    if not page.is_post:
        return page.render(
            "confirm.html",
            heading=f"Roll “{label}” of {name} back to version {last['from_version']}?",
            message=(
                f"{name}@{label} points at version {last['to_version']} since "
                f"{last['created_at']:%Y-%m-%d %H:%M} UTC ({last['actor']}). Rolling back "
                f"points it at version {last['from_version']} again."
            ),
            action=prompt_url(page, name, "/labels/rollback"),
            fields={"label": label},
            confirm_label=f"Roll back to v{last['from_version']}",
            cancel=prompt_url(page, name),
        )
    before, after = registry_of(page.runtime).rollback(
        page.project_id, name, label, actor=Actor.of(principal)
    )
    return page.redirect(
        prompt_url(page, name), f"Label “{label}” rolled back from v{before} to v{after}."
    )
