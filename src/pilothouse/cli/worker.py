"""``pilothouse worker``: consume background jobs (with Redis, on any number of machines)."""

from __future__ import annotations

import click

from pilothouse.cli.context import settings_from


@click.command()
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker threads [PILOTHOUSE_JOB_WORKERS]",
)
@click.pass_context
def worker(ctx: click.Context, workers: int | None) -> None:
    """Run a job consumer until interrupted (Ctrl-C or SIGTERM finishes running jobs first)."""
    from pilothouse import logs
    from pilothouse.runtime import Runtime

    settings = settings_from(ctx, job_workers=workers)
    logs.configure(settings.log_level, settings.log_format)
    runtime = Runtime(settings)
    runtime.migrate()
    click.echo(
        f"Worker consuming jobs from {'Redis' if settings.redis_url else 'SQLite'} "
        f"with {settings.job_workers} threads",
        err=True,
    )
    try:
        runtime.jobs.run_worker(settings.job_workers)
    finally:
        runtime.db.close()
