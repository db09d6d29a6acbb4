"""Built-in plugin serving the gateway's Prometheus metrics at ``GET /metrics``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from pilothouse.gateway.metrics import metrics_endpoint
from pilothouse.hookspecs import hookimpl

if TYPE_CHECKING:
    from pilothouse.runtime import Runtime


@hookimpl
def asgi_routes(runtime: Runtime) -> list[Any]:
    return [Route("/metrics", metrics_endpoint(runtime), methods=["GET"])]
