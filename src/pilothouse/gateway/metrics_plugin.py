"""Built-in plugin of the gateway's operational routes: ``GET /metrics`` (Prometheus), the
management API of project limits and spend (:mod:`pilothouse.gateway.usage_api`) and of
deployments and their breakers (:mod:`pilothouse.gateway.deployments_api`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from pilothouse.gateway.deployments_api import router as deployments_router
from pilothouse.gateway.metrics import metrics_endpoint
from pilothouse.gateway.usage_api import router as usage_router
from pilothouse.hookspecs import hookimpl

if TYPE_CHECKING:
    from pilothouse.runtime import Runtime


@hookimpl
def asgi_routes(runtime: Runtime) -> list[Any]:
    return [
        Route("/metrics", metrics_endpoint(runtime), methods=["GET"]),
        *usage_router.routes,
        *deployments_router.routes,
    ]
