"""Project settings: API keys (created once, revoked with confirmation) and members."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.responses import Response

from pilothouse.errors import BadRequest, Forbidden, NotFound
from pilothouse.identity.access import ROLES, SCOPES
from pilothouse.store import identity as store
from pilothouse.store.types import utcnow
from pilothouse.web.ui import Page

MAX_ROWS = 200
NAME_LIMIT = 200


def _name(page: Page, field: str = "name") -> str:
    name = page.form.get(field, "").strip()
    if not name or len(name) > NAME_LIMIT or any(ord(c) < 32 for c in name):
        raise BadRequest(f"{field} must be 1 to {NAME_LIMIT} printable characters", param=field)
    return name


def _keys(page: Page) -> tuple[list[dict[str, Any]], bool]:
    t = store.api_keys
    with page.runtime.db.read() as conn:
        rows, more = store.page(conn, t, where=[t.c.project_id == page.project_id], limit=MAX_ROWS)
    keys = [{k: v for k, v in dict(r).items() if k != "key_hash"} for r in rows]
    keys.sort(key=lambda k: (k["revoked_at"] is not None, -k["id"]))
    return keys, more is not None


def keys(page: Page) -> Response:
    """The project's API keys; admins can create and revoke them."""
    page.require("read")
    rows, truncated = _keys(page) if page.can("admin") else ([], False)
    return page.render(
        "settings/keys.html", keys=rows, truncated=truncated, scopes=SCOPES, new_key=None
    )


def create_key(page: Page) -> Response:
    """Create a key and show it once (the response is not cached and not repeated)."""
    principal = page.require("admin")
    name = _name(page)
    scopes = [s for s in SCOPES if page.form.get(f"scope_{s}")]
    if not scopes:
        raise BadRequest("choose at least one scope", param="scopes")
    expires_at = None
    days = page.form.get("expires_in_days", "").strip()
    if days:
        if not days.isdigit() or not 1 <= int(days) <= 36500:
            raise BadRequest("expiry must be 1 to 36500 days", param="expires_in_days")
        expires_at = utcnow() + timedelta(days=int(days))
    key, row = page.runtime.keys.create(
        page.project_id, name, scopes, expires_at=expires_at, created_by=principal.id
    )
    rows, truncated = _keys(page)
    return page.render(
        "settings/keys.html",
        status=201,
        keys=rows,
        truncated=truncated,
        scopes=SCOPES,
        new_key={"key": key, "name": row["name"]},
    )


def _own_key(page: Page) -> dict[str, Any]:
    key_id = int(page.request.path_params["key_id"])
    with page.runtime.db.read() as conn:
        row = store.get_key(conn, key_id)
    if row["project_id"] != page.project_id:
        raise NotFound(f"API key {key_id} not found in this project")
    return dict(row)


def revoke_key(page: Page) -> Response:
    """GET: ask for confirmation. POST: revoke; the key stops working at once."""
    page.require("admin")
    row = _own_key(page)
    if not page.is_post:
        return page.render(
            "confirm.html",
            heading=f"Revoke the key “{row['name']}”?",
            message=(
                f"Applications using the key {row['prefix']}… stop working at once. "
                "This cannot be undone."
            ),
            action=page.url(f"/settings/keys/{row['id']}/revoke"),
            confirm_label="Revoke key",
            cancel=page.url("/settings/keys"),
        )
    page.runtime.keys.revoke(row["id"])
    return page.redirect(page.url("/settings/keys"), f"Key “{row['name']}” revoked.")


def members(page: Page) -> Response:
    """Who can see and change this project, with their roles."""
    page.require("read")
    t = store.memberships
    with page.runtime.db.read() as conn:
        rows, more = store.page(conn, t, where=[t.c.project_id == page.project_id], limit=MAX_ROWS)
        people = [{**dict(m), "user": store.get_user(conn, m["user_id"])} for m in rows]
    return page.render(
        "settings/members.html", members=people, roles=ROLES, truncated=more is not None
    )


def _role(page: Page) -> str:
    role = page.form.get("role", "")
    if role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}", param="role")
    if role == "owner" and not _is_owner(page):
        raise Forbidden("only an owner can make another owner")
    return role


def _is_owner(page: Page) -> bool:
    principal = page.require("admin")
    return principal.is_superuser or principal.roles.get(page.project_id) == "owner"


def add_member(page: Page) -> Response:
    page.require("admin")
    role = _role(page)
    email = page.form.get("email", "").strip()
    with page.runtime.db.write() as conn:
        user = store.user_by_email(conn, email) if email else None
        if user is None:
            raise NotFound(f"no user with the email {email!r}; create the user first")
        store.set_membership(conn, page.project_id, user["id"], role)
    return page.redirect(page.url("/settings/members"), f"{user['email']} is now {role}.")


def change_member(page: Page) -> Response:
    """Change a member's role, or remove them (``action=remove``)."""
    page.require("admin")
    user_id = int(page.request.path_params["user_id"])
    with page.runtime.db.read() as conn:
        current = store.get_membership(conn, page.project_id, user_id)
        user = store.get_user(conn, user_id)
    if current["role"] == "owner" and not _is_owner(page):
        raise Forbidden("only an owner can change another owner")
    if page.form.get("action") == "remove":
        with page.runtime.db.write() as conn:
            store.delete_membership(conn, page.project_id, user_id)
        return page.redirect(page.url("/settings/members"), f"{user['email']} removed.")
    role = _role(page)
    with page.runtime.db.write() as conn:
        store.set_membership(conn, page.project_id, user_id, role)
    return page.redirect(page.url("/settings/members"), f"{user['email']} is now {role}.")


def models(page: Page) -> Response:
    """The gateway's model aliases, deployments and router policy (read-only, no secrets)."""
    page.require("read")
    gateway = page.runtime.state.get("gateway")
    source = getattr(gateway, "source", None)
    config = source.get() if source is not None else None
    routes = []
    if config is not None:
        for name, route in sorted(config.models.items()):
            routes.append(
                {
                    "name": name,
                    "operation": route.operation,
                    "fallbacks": list(route.fallbacks),
                    "deployments": [d.public() for d in route.deployments],
                }
            )
    return page.render(
        "settings/models.html",
        routes=routes,
        source=getattr(config, "source", None),
        policy=vars(config.router) if config is not None else {},
    )
