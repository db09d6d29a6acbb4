"""``pilothouse db``: schema migrations."""

from __future__ import annotations

import click

from pilothouse.cli.context import emit, json_option, runtime_from
from pilothouse.store import migrate


@click.group()
def db() -> None:
    """Database schema migrations."""


@db.command()
@click.pass_context
def upgrade(ctx: click.Context) -> None:
    """Apply every pending migration."""
    with runtime_from(ctx, migrate=False) as runtime:
        before = migrate.current(runtime.db)
        migrate.upgrade(runtime.db)
        after = migrate.current(runtime.db)
    click.echo(
        "Already up to date." if before == after else f"Upgraded to {', '.join(sorted(after))}."
    )


@db.command()
@json_option
@click.pass_context
def current(ctx: click.Context, as_json: bool) -> None:
    """Show the revisions the database is at, and whether any are pending."""
    with runtime_from(ctx, migrate=False) as runtime:
        revs = sorted(migrate.current(runtime.db))
        pending = not migrate.is_current(runtime.db)
    emit(
        {"current": revs, "pending": pending},
        as_json,
        f"{', '.join(revs) or '(empty database)'} ({'migrations pending' if pending else 'head'})",
    )


@db.command()
@json_option
def history(as_json: bool) -> None:
    """List every migration, newest first."""
    revs = migrate.history()
    if as_json:
        emit([r.__dict__ for r in revs], True, "")
        return
    for r in revs:
        click.echo(f"{r.down_revision or '<base>'} -> {r.revision} [{r.branch}] {r.message}")
