"""``pilothouse settings``: every setting with its current value and where to set it."""

from __future__ import annotations

import click

from pilothouse.cli.context import emit, json_option, settings_from
from pilothouse.settings import registry, type_name


@click.command()
@json_option
@click.pass_context
def settings(ctx: click.Context, as_json: bool) -> None:
    """List settings: name, environment variable, type, current value, help."""
    current = settings_from(ctx).public()
    if as_json:
        emit(
            {k: str(v) if not isinstance(v, bool | int | float) else v for k, v in current.items()},
            True,
            "",
        )
        return
    for info in registry():
        click.echo(f"{info.env} ({type_name(info)}) = {current[info.name]!s}")
        click.echo(f"    {info.help}")
