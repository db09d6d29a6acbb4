"""Builds the ASGI application from its parts; nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

import pilothouse
from pilothouse.api import create_api
from pilothouse.api.bodylimit import BodyLimit
from pilothouse.protocol import HttpProtocol, protocol_for
from pilothouse.runtime import Runtime


def create_app(runtime: Runtime) -> HotPaths:
    """The whole server: management API, plugin routes (gateway, ingestion, UI), body limit.

    Serve it with ``http=app.protocol()`` so that its hot paths take the short road.
    """

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
    return HotPaths(app, hot, runtime.settings.max_body_bytes)


class HotPaths:
    """Sends requests for a few exact paths (the gateway's) straight to their app, skipping
    the API's middleware and route matching; everything else goes to ``api``. Both sit behind
    the body limit. Served with :meth:`protocol`, the hot paths skip uvicorn's request cycle
    too (:mod:`pilothouse.protocol`)."""

    def __init__(self, api: ASGIApp, paths: Mapping[str, ASGIApp], max_body_bytes: int) -> None:
        self.api = api
        self.paths = dict(paths)
        self.max_body_bytes = max_body_bytes
        self.app = BodyLimit(api, max_body_bytes)
        self._limited = {path: BodyLimit(hot, max_body_bytes) for path, hot in paths.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = self._limited.get(scope["path"], self.app) if scope["type"] == "http" else self.app
        await target(scope, receive, send)

    def protocol(self) -> type[HttpProtocol]:
        """uvicorn's ``http`` class for this app (``uvicorn.run(app, http=app.protocol())``)."""
        return protocol_for(self.paths, self.max_body_bytes)

    def __getattr__(self, name: str) -> Any:
        # Otherwise it stands for the API app (``.openapi()``, ``.router``, ``.state``).
        return getattr(self.api, name)
