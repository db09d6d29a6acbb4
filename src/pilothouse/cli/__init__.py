"""The ``pilothouse`` command line. One module per command group."""

from __future__ import annotations

import sys
from typing import Any

import click

import pilothouse
from pilothouse.cli import admin, db, serve, settings_cmd, worker
from pilothouse.errors import PilothouseError


class Group(click.Group):
    """Reports Pilothouse errors (bad settings, unknown project...) as one line, no traceback.

    Plugin commands are added on first use, not at import: a plugin's ``register_commands``
    may import ``pilothouse.cli.*`` helpers, which would otherwise re-enter this module.
    """

    _plugins_added = False

    def _add_plugin_commands(self) -> None:
        if not self._plugins_added:
            self._plugins_added = True
            from pilothouse.plugins import pm

            pm.hook.register_commands(cli=self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._add_plugin_commands()
        return super().get_command(ctx, cmd_name)

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


def main() -> None:
    cli(prog_name="pilothouse")
