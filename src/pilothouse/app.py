"""Builds the ASGI application from its parts; nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp

import pilothouse
from pilothouse.api import create_api
from pilothouse.api.bodylimit import BodyLimit
from pilothouse.runtime import Runtime


def create_app(runtime: Runtime) -> ASGIApp:
    """The whole server: management API, plugin routes (gateway, ingestion, UI), body limit."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(runtime.start)
        try:
            yield
        finally:
            await run_in_threadpool(runtime.stop)

    app = create_api("Pilothouse", pilothouse.__version__)
    app.router.lifespan_context = lifespan
    app.state.runtime = runtime
    for routes in runtime.plugins.hook.asgi_routes(runtime=runtime):
        app.router.routes.extend(routes)
    return BodyLimit(app, runtime.settings.max_body_bytes)
