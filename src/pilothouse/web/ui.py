"""The web UI's request plumbing: one :class:`Page` per request, built by :meth:`WebUI.view`.

A page handler is a plain (synchronous) function ``handler(page) -> Response``. The view
wrapper decodes the session, checks the CSRF token of every POST, loads the signed-in user and
the project in the URL, runs the handler in a thread, turns Pilothouse errors into HTML error
pages and writes the session cookie back. Handlers check edit rights with
``page.require("write")``/``("admin")``; templates hide edit buttons with ``can("...")``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import sqlalchemy as sa
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.engine import RowMapping
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from pilothouse.errors import NotFound, PilothouseError, Unauthorized
from pilothouse.identity.access import Principal, user_principal
from pilothouse.store import identity as store
from pilothouse.web import charts, formats
from pilothouse.web.sessions import COOKIE, LoginLimiter, Session, SessionCodec, load_secret_key

if TYPE_CHECKING:
    from pilothouse.runtime import Runtime

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
MAX_PROJECTS_LISTED = 200

#: Inline scripts and styles never run: even a missed escape cannot execute injected code.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

#: Methods that never change anything; every other one must carry the CSRF token.
SAFE_METHODS = frozenset({"GET", "HEAD"})

Handler = Callable[["Page"], Response]
Endpoint = Callable[[Request], Awaitable[Response]]


class Page:
    """What a page handler needs: the request, the form, the user, the project, rendering."""

    def __init__(
        self,
        ui: WebUI,
        request: Request,
        session: Session,
        form: Mapping[str, str],
    ) -> None:
        self.ui = ui
        self.runtime = ui.runtime
        self.request = request
        self.session = session
        self.form = form
        self.user: RowMapping | None = None
        self.principal: Principal | None = None
        self.project: RowMapping | None = None
        self.projects: list[RowMapping] = []

    # --- who and where ------------------------------------------------------------------------

    @property
    def project_id(self) -> int:
        if self.project is None:
            raise NotFound("this page needs a project")
        return int(self.project["id"])

    def can(self, scope: str) -> bool:
        """Whether the signed-in user holds ``scope`` on the current project."""
        if self.principal is None or self.project is None:
            return False
        return self.principal.can(scope, self.project["id"], self.project["org_id"])

    def require(self, scope: str) -> Principal:
        """The signed-in user, if they hold ``scope`` on the current project (else Forbidden)."""
        if self.principal is None:
            raise Unauthorized("sign in first", code="login_required")
        if self.project is not None:
            self.principal.require(scope, self.project["id"], self.project["org_id"])
        return self.principal

    @property
    def is_post(self) -> bool:
        """Whether this request may change something (and so carried a checked CSRF token)."""
        return self.request.method not in SAFE_METHODS

    def query(self, name: str, default: str = "") -> str:
        return self.request.query_params.get(name, default)

    def url(self, path: str = "") -> str:
        """A URL inside the current project, e.g. ``page.url('/traces')``."""
        return f"/projects/{self.project_id}{path}"

    # --- responses ----------------------------------------------------------------------------

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.ui.templates.get_template(template).render(
            page=self,
            request=self.request,
            user=self.user,
            project=self.project,
            projects=self.projects,
            can=self.can,
            csrf_token=self.session.csrf_token,
            flashes=self.session.pop_flashes(),
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def redirect(self, url: str, flash: str | None = None, kind: str = "ok") -> Response:
        """303 See Other after a successful POST (so reloading does not repeat it)."""
        if flash:
            self.session.flash(flash, kind)
        return RedirectResponse(url, status_code=303)


class WebUI:
    """The web UI of one runtime: templates, session codec, login limiter."""

    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.codec = SessionCodec(load_secret_key(settings), settings.web_session_hours * 3600)
        self.limiter = LoginLimiter(max(1, settings.web_login_attempts))
        #: The project navigation: (label, path under ``/projects/{id}``).
        self.nav: list[tuple[str, str]] = []
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals.update(
            charts=charts, fmt=formats, messages_of=formats.messages_of, as_text=formats.as_text
        )
        self.templates.filters.update(formats.FILTERS)

    def view(self, handler: Handler, *, login: bool = True) -> Endpoint:
        """Wrap a page handler into a Starlette endpoint (see the module docstring)."""

        async def endpoint(request: Request) -> Response:
            session = self.codec.load(request.cookies.get(COOKIE))
            page = Page(self, request, session, {})
            try:
                if request.method not in SAFE_METHODS:
                    raw = await request.form()
                    page.form = {k: v for k, v in raw.items() if isinstance(v, str)}
                    session.check_csrf(page.form.get("csrf_token"))
                await run_in_threadpool(self._identify, page, login)
                response = await run_in_threadpool(handler, page)
            except Unauthorized as exc:
                response = self._to_login(page, exc)
            except PilothouseError as exc:
                response = await run_in_threadpool(self._error, page, exc)
            self._finish(request, session, response)
            return response

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        return endpoint

    # --- internals ----------------------------------------------------------------------------

    def _identify(self, page: Page, login: bool) -> None:
        """Load the user (if the session is valid) and the project in the URL."""
        uid = page.session.user_id
        with self.runtime.db.read() as conn:
            if uid is not None:
                user = _user_or_none(conn, uid)
                fingerprint = page.session.data.get("fp")
                if (
                    user is not None
                    and user["is_active"]
                    and fingerprint == self.codec.fingerprint(user["password_hash"])
                ):
                    page.user = user
                    roles = store.roles_of(conn, user["id"])
                    page.principal = user_principal(
                        user["id"], user["email"], user["is_superuser"], roles
                    )
                else:
                    page.session.log_out()
            if page.principal is None:
                if login:
                    raise Unauthorized("sign in to see this page", code="login_required")
                return
            page.projects = _visible_projects(conn, page.principal)
            if "project_id" in page.request.path_params:
                project = store.get_project(conn, int(page.request.path_params["project_id"]))
                page.principal.require("read", project["id"], project["org_id"])
                page.project = project

    def _to_login(self, page: Page, exc: Unauthorized) -> Response:
        if page.request.method in SAFE_METHODS:
            target = page.request.url.path
            if page.request.url.query:
                target += "?" + page.request.url.query
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return self._error(page, exc)

    def _error(self, page: Page, exc: PilothouseError) -> Response:
        if exc.status >= 500:
            log.error("web page %s failed: %s", page.request.url.path, exc.detail)
        response = page.render("error.html", status=exc.status, error=exc)
        response.headers.update(exc.headers())
        return response

    def _finish(self, request: Request, session: Session, response: Response) -> None:
        response.headers.update(SECURITY_HEADERS)
        if not session.changed:
            return
        mode = self.runtime.settings.web_cookie_secure
        secure = mode == "always" or (mode == "auto" and request.url.scheme == "https")
        response.set_cookie(
            COOKIE,
            self.codec.dump(session),
            max_age=self.codec.max_age,
            httponly=True,
            samesite="lax",
            secure=secure,
            path="/",
        )


def _user_or_none(conn: sa.Connection, user_id: int) -> RowMapping | None:
    try:
        return store.get_user(conn, user_id)
    except NotFound:
        return None


def _visible_projects(conn: sa.Connection, principal: Principal) -> list[RowMapping]:
    """Projects for the switcher, by id (bounded: a switcher is not a search page)."""
    t = store.projects
    visible = principal.visible_projects()
    where = [] if visible is None else [t.c.id.in_(sorted(visible))]
    rows, _ = store.page(conn, t, where=where, limit=MAX_PROJECTS_LISTED)
    return rows
