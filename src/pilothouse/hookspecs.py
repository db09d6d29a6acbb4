"""Plugin hooks. Built-in features register through these same hooks as third-party plugins.

A plugin is a module or object with functions marked ``@pilothouse.hookimpl``, published under
the ``pilothouse`` entry-point group (``[project.entry-points.pilothouse]``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from pilothouse.jobs import JobSpec
    from pilothouse.runtime import Runtime

hookspec = pluggy.HookspecMarker("pilothouse")
hookimpl = pluggy.HookimplMarker("pilothouse")


@hookspec
def register_jobs(register: Callable[[JobSpec], None]) -> None:
    """Register background jobs: call ``register(JobSpec(...))`` for each."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands or command groups to the ``pilothouse`` CLI."""


@hookspec
def startup(runtime: Runtime) -> None:
    """Called once the runtime (settings, database, jobs) is ready, before serving."""


@hookspec
def shutdown(runtime: Runtime) -> None:
    """Called when the server stops, before background writers are flushed and closed."""


@hookspec
def asgi_routes(runtime: Runtime) -> list[Any]:  # type: ignore[empty-body]
    """Return Starlette routes or mounts to add to the server (e.g. ``Mount('/v1', app)``)."""
