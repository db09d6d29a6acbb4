"""Builds the ASGI application from its parts; nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

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
    hot: dict[str, ASGIApp] = {}
    for paths in runtime.plugins.hook.asgi_hot_paths(runtime=runtime):
        hot.update(paths)
    return BodyLimit(HotPaths(app, hot) if hot else app, runtime.settings.max_body_bytes)


class HotPaths:
    """Sends requests for a few exact paths (the gateway's) straight to their app, skipping
    the API's middleware and route matching; everything else goes to ``app``."""

    def __init__(self, app: ASGIApp, paths: dict[str, ASGIApp]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self.paths.get(scope["path"], self.app) if scope["type"] == "http" else self.app
        await target(scope, receive, send)

    def __getattr__(self, name: str) -> Any:
        # Otherwise it stands for the wrapped app (``.openapi()``, ``.router``, ``.state``).
        return getattr(self.app, name)
