"""The management REST API under ``/api`` (OpenAPI at ``/api/openapi.json``)."""

from __future__ import annotations

from fastapi import FastAPI

from pilothouse.api import health, jobs, keys, problems, projects, users

ROUTERS = (health.router, projects.router, keys.router, users.router, jobs.router)


def create_api(title: str, version: str) -> FastAPI:
    """The FastAPI application with every management route and the problem+json handlers."""
    app = FastAPI(
        title=title,
        version=version,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,  # no OAuth2 flows; keep every route under /api
    )
    for router in ROUTERS:
        app.include_router(router)
    problems.install(app)
    return app


__all__ = ["create_api"]
