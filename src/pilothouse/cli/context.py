"""What every command needs: settings from flags and environment, and a runtime."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from pilothouse.runtime import Runtime
from pilothouse.settings import Settings, load_settings


def settings_from(ctx: click.Context, **more: Any) -> Settings:
    root = ctx.find_root()
    overrides = dict(root.obj.get("overrides", {})) if root.obj else {}
    overrides.update({k: v for k, v in more.items() if v is not None})
    return load_settings(overrides)


@contextmanager
def runtime_from(ctx: click.Context, *, migrate: bool = True) -> Iterator[Runtime]:
    """A runtime for one command: database migrated, no background consumer."""
    runtime = Runtime(settings_from(ctx))
    try:
        if migrate:
            runtime.migrate()
        yield runtime
    finally:
        runtime.db.close()


def emit(data: Any, as_json: bool, line: str) -> None:
    """Print ``data`` as JSON, or ``line`` for people."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(line)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
