"""Tracing as a built-in plugin: OTLP ingestion routes, the query API and the retention job."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from pilothouse.hookspecs import hookimpl
from pilothouse.jobs import JobContext, JobSpec
from pilothouse.runtime import Runtime
from pilothouse.store import identity
from pilothouse.store import traces as store
from pilothouse.tracing import api, ingest, otlp_grpc

log = logging.getLogger(__name__)

DAY_NS = 86_400 * 1_000_000_000
GRPC_STATE = "tracing.otlp_grpc"


@hookimpl(tryfirst=True)
def asgi_routes(runtime: Runtime) -> list[Any]:
    # tryfirst: the gateway mounts all of /v1; POST /v1/traces must be matched before it.
    return [*ingest.routes(), *api.router.routes]


@hookimpl
def startup(runtime: Runtime) -> None:
    # Starting the writer now replays spans spilled by an earlier run.
    runtime.traces.start()
    if runtime.settings.otlp_grpc_enabled:
        runtime.state[GRPC_STATE] = otlp_grpc.start(runtime)


@hookimpl
def shutdown(runtime: Runtime) -> None:
    server = runtime.state.pop(GRPC_STATE, None)
    if server is not None:
        otlp_grpc.stop(server)


def enforce_retention(context: JobContext) -> dict[str, int]:
    """Delete traces older than each project's ``retention_days`` (or the default setting)."""
    default_days = context.settings.tracing_retention_days
    now = time.time_ns()
    deleted: dict[str, int] = {}
    with context.db.read() as conn:
        projects = list(
            conn.execute(sa.select(identity.projects.c.id, identity.projects.c.retention_days))
        )
    for project_id, days in projects:
        days = days or default_days
        if not days:
            continue
        with context.db.write() as conn:
            n = store.delete_traces_before(conn, project_id, now - days * DAY_NS)
        if n:
            log.info("retention: deleted %d traces of project %d", n, project_id)
        deleted[str(project_id)] = n
    return deleted


@hookimpl
def register_jobs(register: Callable[[JobSpec], None]) -> None:
    register(
        JobSpec(
            name="tracing.retention",
            func=enforce_retention,
            retries=2,
            schedule="17 * * * *",
            description="Deletes traces (spans, scores) older than the project's retention_days.",
        )
    )
