"""The ``pilothouse`` command line. One module per command group."""

from __future__ import annotations

import sys
from typing import Any

import click

import pilothouse
from pilothouse.cli import admin, db, serve, settings_cmd, worker
from pilothouse.errors import PilothouseError
from pilothouse.plugins import pm


class Group(click.Group):
    """Reports Pilothouse errors (bad settings, unknown project...) as one line, no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PilothouseError as exc:
            click.echo(f"Error: {exc.detail}", err=True)
            sys.exit(2 if exc.status in (0, 500) else 1)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(pilothouse.__version__, prog_name="pilothouse")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Data directory (PILOTHOUSE_DATA_DIR).",
)
@click.option("--database-url", default=None, help="Database URL (PILOTHOUSE_DATABASE_URL).")
@click.pass_context
def cli(ctx: click.Context, data_dir: str | None, database_url: str | None) -> None:
    """Pilothouse: gateway, tracing, prompts, evals and guardrails for LLM apps."""
    ctx.ensure_object(dict)
    ctx.obj["overrides"] = {"data_dir": data_dir, "database_url": database_url}


cli.add_command(serve.serve)
cli.add_command(worker.worker)
cli.add_command(db.db)
cli.add_command(settings_cmd.settings)
for command in admin.COMMANDS:
    cli.add_command(command)
pm.hook.register_commands(cli=cli)


def main() -> None:
    cli(prog_name="pilothouse")
