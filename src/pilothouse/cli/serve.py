"""``pilothouse serve``: the whole product in one process."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import socket
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from pilothouse.cli.context import settings_from
from pilothouse.settings import Settings, registry, type_name

if TYPE_CHECKING:
    from pilothouse.runtime import Runtime


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
    from pilothouse import logs
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
    processes = settings.server_processes
    click.echo(
        f"Pilothouse on http://{settings.host}:{settings.port} (database: {runtime.db.dialect}"
        + (f", {processes} processes)" if processes > 1 else ")"),
        err=True,
    )
    if processes > 1:
        runtime.db.close()
        sys.exit(_serve_processes(settings, log_config))
    _quiet_signals()
    _run(runtime, log_config)


def _quiet_signals() -> None:
    # uvicorn re-raises the signal that stopped it after a graceful shutdown, which would
    # turn a clean stop into exit status -15 (or a KeyboardInterrupt): let it land here.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, lambda *_: None)


def _run(runtime: Runtime, log_config: Any, sock: socket.socket | None = None) -> None:
    """Serve ``runtime``'s app with uvicorn until a signal stops it (on ``sock`` if given)."""
    import uvicorn

    from pilothouse.app import create_app

    settings = runtime.settings
    app = create_app(runtime)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=log_config,
        http=app.protocol(),  # httptools, one write per answer, hot paths on the short road
        access_log=False,
        timeout_graceful_shutdown=30,
        lifespan="on",
    )
    uvicorn.Server(config).run(sockets=[sock] if sock is not None else None)


def _serve_processes(settings: Settings, log_config: Any) -> int:
    """Run ``server_processes`` servers on one port; returns the exit status.

    Each process listens on its own ``SO_REUSEPORT`` socket, so the kernel spreads new
    connections over them (with one shared socket the process that wakes first accepts every
    pending connection). Only the first runs the in-process job consumer. A stop signal sent
    to this process is passed on; each server shuts down gracefully.
    """
    spawn = multiprocessing.get_context("spawn")
    children = [
        spawn.Process(target=_child, args=(settings, log_config, i), name=f"pilothouse-{i}")
        for i in range(settings.server_processes)
    ]
    for child in children:
        child.start()

    def stop(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signum)  # a Ctrl-C reaches them from the terminal too

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, lambda *_: None)  # the process group's Ctrl-C reached them
    for child in children:
        child.join()
    return 1 if any(child.exitcode for child in children) else 0


def _child(settings: Settings, log_config: Any, index: int) -> None:
    """One of ``server_processes``: its own runtime, on its own socket of the shared port."""
    from pilothouse import logs
    from pilothouse.runtime import Runtime

    logs.configure(settings.log_level, settings.log_format)
    if index:
        settings = dataclasses.replace(settings, workers_inline=False)
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((settings.host, settings.port))
    _quiet_signals()
    _run(Runtime(settings), log_config, sock)
