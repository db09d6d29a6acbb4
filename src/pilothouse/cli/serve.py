"""``pilothouse serve``: the whole product in one process."""

from __future__ import annotations

import signal
from typing import Any

import click

from pilothouse.cli.context import settings_from
from pilothouse.settings import registry, type_name


def _setting_options(func: Any) -> Any:
    """One flag per setting, generated from the registry."""
    for info in reversed(registry()):
        if info.name in ("data_dir", "database_url"):
            continue  # global options of the pilothouse command, also accepted here
        if info.type is bool:
            opt = click.option(
                f"{info.flag}/--no-{info.flag[2:]}",
                info.name,
                default=None,
                help=f"{info.help} [{info.env}]",
            )
        else:
            kind: Any = click.Choice(info.choices) if info.choices else click.STRING
            opt = click.option(
                info.flag,
                info.name,
                type=kind,
                default=None,
                metavar=type_name(info).upper() if not info.choices else None,
                help=f"{info.help} [{info.env}]",
            )
        func = opt(func)
    return func


@click.command()
@click.option("--data-dir", default=None, help="Data directory [PILOTHOUSE_DATA_DIR]")
@click.option("--database-url", default=None, help="Database URL [PILOTHOUSE_DATABASE_URL]")
@_setting_options
@click.pass_context
def serve(ctx: click.Context, /, **options: Any) -> None:
    """Run the server: API, gateway, ingestion and UI on one port.

    Applies migrations first (unless --no-migrate) and, on first start, creates the default
    project and an administrator, printing the generated credentials once.
    """
    import uvicorn

    from pilothouse import logs
    from pilothouse.app import create_app
    from pilothouse.runtime import Runtime
    from pilothouse.store import migrate

    settings = settings_from(ctx, **options)
    log_config = logs.configure(settings.log_level, settings.log_format)
    runtime = Runtime(settings)
    if settings.migrate:
        runtime.migrate()
    first = None
    if migrate.is_current(runtime.db):
        first = runtime.bootstrap()
    else:
        # Serve anyway: /readyz answers 503 until `pilothouse db upgrade` has run.
        click.echo(
            "Warning: the database schema is not current (started with --no-migrate); run "
            "`pilothouse db upgrade`, then restart. /readyz answers 503 until then.",
            err=True,
        )
    if first is not None:
        click.echo(f"Created administrator {first.email} and the 'default' project.", err=True)
        if first.password:
            click.echo(f"  password: {first.password}", err=True)
        if first.key:
            click.echo(f"  admin API key: {first.key}", err=True)
        if first.password or first.key:
            click.echo("  (shown only this once)", err=True)
    click.echo(
        f"Pilothouse on http://{settings.host}:{settings.port} (database: {runtime.db.dialect})",
        err=True,
    )
    # uvicorn re-raises the signal that stopped it after a graceful shutdown, which would
    # turn a clean stop into exit status -15 (or a KeyboardInterrupt): let it land here.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, lambda *_: None)
    app = create_app(runtime)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=log_config,
        http=app.protocol(),  # httptools, one write per answer, hot paths on the short road
        access_log=False,
        timeout_graceful_shutdown=30,
        lifespan="on",
    )
