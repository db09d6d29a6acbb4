"""Signing in and out, the start page and the project switcher."""

from __future__ import annotations

from starlette.responses import RedirectResponse, Response

from pilothouse.errors import BadRequest, RateLimited
from pilothouse.identity.passwords import verify_password
from pilothouse.store import identity as store
from pilothouse.web.ui import Page


def _safe_next(target: str) -> str:
    """Only same-site paths: never redirect a login to another host."""
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _client(page: Page) -> str:
    return page.request.client.host if page.request.client else "unknown"


def start(page: Page) -> Response:
    """``/``: the first project's home, or the sign-in page."""
    if page.principal is None:
        return RedirectResponse("/login", status_code=303)
    if not page.projects:
        return page.render("no_projects.html")
    return RedirectResponse(f"/projects/{page.projects[0]['id']}", status_code=303)


def switch(page: Page) -> Response:
    """The project switcher's target (a GET form, so it works without JavaScript)."""
    raw = page.query("project_id")
    if not raw.isdigit():
        raise BadRequest("choose a project", param="project_id")
    return RedirectResponse(f"/projects/{int(raw)}", status_code=303)


def login(page: Page) -> Response:
    if not page.is_post:
        if page.principal is not None:
            return RedirectResponse(_safe_next(page.query("next", "/")), status_code=303)
        return page.render("login.html", next=_safe_next(page.query("next", "/")), email="")
    email = page.form.get("email", "").strip()[:320]
    password = page.form.get("password", "")[:1024]
    target = _safe_next(page.form.get("next", "/"))
    try:
        page.ui.limiter.hit(_client(page), email)
    except RateLimited as exc:
        response = page.render("login.html", status=429, next=target, email=email, error=exc.detail)
        response.headers.update(exc.headers())
        return response
    with page.runtime.db.read() as conn:
        user = store.user_by_email(conn, email) if email else None
    if (
        user is None
        or not user["is_active"]
        or not verify_password(user["password_hash"], password)
    ):
        return page.render(
            "login.html", status=401, next=target, email=email, error="Wrong email or password."
        )
    page.ui.limiter.reset(_client(page), email)
    page.session.log_in(user["id"], page.ui.codec.fingerprint(user["password_hash"]))
    return RedirectResponse(target, status_code=303)


def logout(page: Page) -> Response:
    page.session.log_out()
    page.session.flash("You are signed out.")
    return RedirectResponse("/login", status_code=303)
