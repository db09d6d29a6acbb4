"""The project home: what happened recently, at a glance."""

from __future__ import annotations

from starlette.responses import Response

from pilothouse.store import identity as store
from pilothouse.web.ui import Page


def home(page: Page) -> Response:
    page.require("read")
    t = store.memberships
    with page.runtime.db.read() as conn:
        members, _ = store.page(conn, t, where=[t.c.project_id == page.project_id], limit=200)
    return page.render("home.html", member_count=len(members))
