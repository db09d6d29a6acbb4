"""Administration commands that mirror the API: projects, keys, users, jobs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click

from pilothouse.cli.context import emit, json_option, runtime_from
from pilothouse.identity.access import ROLES, SCOPES
from pilothouse.identity.passwords import MIN_LENGTH, generate_password, hash_password
from pilothouse.runtime import DEFAULT_ORG, Runtime
from pilothouse.store import identity as store
from pilothouse.store.types import utcnow


def _project_id(runtime: Runtime, project: str) -> int:
    """A project given by id or by name."""
    with runtime.db.read() as conn:
        row = (
            store.get_project(conn, int(project))
            if project.isascii() and project.isdigit()
            else store.project_by_name(conn, project)
        )
    return int(row["id"])


def _plain(row: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(row).items() if k not in ("key_hash", "password_hash")}


# --- projects --------------------------------------------------------------------------------


@click.group()
def projects() -> None:
    """Create and list projects."""


@projects.command("create")
@click.argument("name")
@click.option("--org", default=DEFAULT_ORG, show_default=True, help="Organization name.")
@click.option(
    "--retention-days",
    type=click.IntRange(1, 36500),
    default=None,
    help="Delete traces older than this many days.",
)
@json_option
@click.pass_context
def projects_create(
    ctx: click.Context, name: str, org: str, retention_days: int | None, as_json: bool
) -> None:
    """Create project NAME (and its organization if new)."""
    with runtime_from(ctx) as runtime, runtime.db.write() as conn:
        org_row = store.org_by_name(conn, org) or store.create_org(conn, org)
        row = store.create_project(conn, org_row["id"], name, retention_days)
    emit(_plain(row), as_json, f"Created project {row['name']} (id {row['id']}) in {org}.")


@projects.command("list")
@json_option
@click.pass_context
def projects_list(ctx: click.Context, as_json: bool) -> None:
    """List all projects."""
    with runtime_from(ctx) as runtime, runtime.db.read() as conn:
        rows = [_plain(r) for r in conn.execute(store.projects.select()).mappings()]
    if as_json:
        emit(rows, True, "")
        return
    for r in rows:
        click.echo(f"{r['id']:>5}  {r['name']}  (org {r['org_id']})")


# --- keys ------------------------------------------------------------------------------------


@click.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.option("--project", "project", required=True, help="Project name or id.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(SCOPES),
    help="A scope the key carries; repeat for several.",
)
@click.option("--name", default="cli", show_default=True, help="A name to recognise the key.")
@click.option(
    "--expires-in-days",
    type=click.IntRange(1, 36500),
    default=None,
    help="Expire the key after this many days.",
)
@json_option
@click.pass_context
def keys_create(
    ctx: click.Context,
    project: str,
    scopes: tuple[str, ...],
    name: str,
    expires_in_days: int | None,
    as_json: bool,
) -> None:
    """Create an API key; it is printed once and only its hash is stored."""
    with runtime_from(ctx) as runtime:
        expires = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
        key, row = runtime.keys.create(
            _project_id(runtime, project), name, list(scopes), expires_at=expires
        )
    emit({**_plain(row), "key": key}, as_json, key)


@keys.command("list")
@click.option("--project", "project", required=True, help="Project name or id.")
@json_option
@click.pass_context
def keys_list(ctx: click.Context, project: str, as_json: bool) -> None:
    """List a project's keys (prefixes only)."""
    with runtime_from(ctx) as runtime:
        pid = _project_id(runtime, project)
        with runtime.db.read() as conn:
            t = store.api_keys
            rows = [
                _plain(r) for r in conn.execute(t.select().where(t.c.project_id == pid)).mappings()
            ]
    if as_json:
        emit(rows, True, "")
        return
    for r in rows:
        state = "revoked" if r["revoked_at"] else "active"
        click.echo(f"{r['id']:>5}  {r['prefix']}…  {r['name']}  {','.join(r['scopes'])}  {state}")


@keys.command("revoke")
@click.argument("key_id", type=int)
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: int) -> None:
    """Revoke key KEY_ID."""
    with runtime_from(ctx) as runtime:
        runtime.keys.revoke(key_id)
    click.echo(f"Revoked key {key_id}.")


# --- users -----------------------------------------------------------------------------------


@click.group()
def users() -> None:
    """Create users and give them roles on projects."""


@users.command("create")
@click.argument("email")
@click.option("--name", default="", help="Display name (defaults to the email).")
@click.option(
    "--password",
    default=None,
    help="Password; read from PILOTHOUSE_NEW_PASSWORD or generated when omitted.",
    envvar="PILOTHOUSE_NEW_PASSWORD",
)
@click.option("--superuser", is_flag=True, help="May administer everything.")
@click.option("--project", default=None, help="Also add the user to this project.")
@click.option("--role", type=click.Choice(ROLES), default="member", show_default=True)
@json_option
@click.pass_context
def users_create(
    ctx: click.Context,
    email: str,
    name: str,
    password: str | None,
    superuser: bool,
    project: str | None,
    role: str,
    as_json: bool,
) -> None:
    """Create user EMAIL."""
    generated = password is None
    password = password or generate_password()
    if len(password) < MIN_LENGTH:
        raise click.BadParameter(f"at least {MIN_LENGTH} characters", param_hint="--password")
    with runtime_from(ctx) as runtime:
        pid = _project_id(runtime, project) if project else None
        with runtime.db.write() as conn:
            row = store.create_user(
                conn, email, name or email, hash_password(password), is_superuser=superuser
            )
            if pid is not None:
                store.set_membership(conn, pid, row["id"], role)
    out = _plain(row) | ({"password": password} if generated else {})
    emit(
        out,
        as_json,
        f"Created user {row['email']} (id {row['id']})"
        + (f"; password: {password}" if generated else ""),
    )


@users.command("grant")
@click.argument("email")
@click.option("--project", required=True, help="Project name or id.")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.pass_context
def users_grant(ctx: click.Context, email: str, project: str, role: str) -> None:
    """Give user EMAIL a role on a project."""
    with runtime_from(ctx) as runtime:
        pid = _project_id(runtime, project)
        with runtime.db.write() as conn:
            user = store.user_by_email(conn, email)
            if user is None:
                raise click.BadParameter(f"no user {email!r}", param_hint="EMAIL")
            store.set_membership(conn, pid, user["id"], role)
    click.echo(f"{email} is now {role} of project {project}.")


@users.command("list")
@json_option
@click.pass_context
def users_list(ctx: click.Context, as_json: bool) -> None:
    """List users."""
    with runtime_from(ctx) as runtime, runtime.db.read() as conn:
        rows = [_plain(r) for r in conn.execute(store.users.select()).mappings()]
    if as_json:
        emit(rows, True, "")
        return
    for r in rows:
        click.echo(f"{r['id']:>5}  {r['email']}{'  (superuser)' if r['is_superuser'] else ''}")


# --- jobs ------------------------------------------------------------------------------------


@click.group()
def jobs() -> None:
    """Queue background jobs and see their status."""


@jobs.command("enqueue")
@click.argument("name")
@click.option("--arg", "args", multiple=True, metavar="KEY=VALUE", help="A keyword argument.")
@click.pass_context
def jobs_enqueue(ctx: click.Context, name: str, args: tuple[str, ...]) -> None:
    """Queue job NAME; prints its id."""
    kwargs: dict[str, Any] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            raise click.BadParameter(f"{arg!r} is not KEY=VALUE", param_hint="--arg")
        kwargs[key] = int(value) if value.isascii() and value.isdigit() else value
    with runtime_from(ctx) as runtime:
        click.echo(runtime.jobs.enqueue(name, **kwargs))


@jobs.command("list")
@click.option("--status", default=None, help="Only jobs in this status.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@json_option
@click.pass_context
def jobs_list(ctx: click.Context, status: str | None, limit: int, as_json: bool) -> None:
    """List recent job runs."""
    from pilothouse.store import jobs as job_store

    with runtime_from(ctx) as runtime, runtime.db.read() as conn:
        rows = [dict(r) for r in job_store.list_jobs(conn, status=status, limit=limit)]
    if as_json:
        emit(rows, True, "")
        return
    for r in rows:
        click.echo(
            f"{r['id']}  {r['name']:<20} {r['status']:<10} attempts={r['attempts']}"
            + (f"  {r['error']}" if r["error"] else "")
        )


COMMANDS = (projects, keys, users, jobs)
