"""Management API of the gateway's deployments: what serves each model alias, and whether its
circuit breaker lets it serve right now.

The state is this process's: each replica keeps its own breakers (a deployment that failed on
one replica may still be closed on another).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from pilothouse.api.deps import Caller, RuntimeDep
from pilothouse.errors import Forbidden
from pilothouse.gateway.config import Deployment
from pilothouse.gateway.router import Breaker, Router

router = APIRouter(tags=["gateway"])


class BreakerState(BaseModel):
    state: str = Field(description="closed, open (left out of routing) or half-open (on trial)")
    open_until: datetime | None = Field(description="End of the cool-down while open")
    consecutive_failures: int = Field(description="Failed attempts since the last success")
    last_error: str | None = Field(description="Message of the latest failed attempt")
    last_error_at: datetime | None


class DeploymentState(BaseModel):
    id: str
    provider: str
    model: str = Field(description="The upstream model")
    base_url: str = Field(description="Without credentials, query or fragment")
    weight: float
    breaker: BreakerState


class ModelDeployments(BaseModel):
    model: str = Field(description="The model alias clients ask for")
    deployments: list[DeploymentState]
    fallbacks: list[str]


class DeploymentList(BaseModel):
    data: list[ModelDeployments]


def public_url(url: str) -> str:
    """``url`` without what may carry a secret: user info, query string and fragment."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _when(stamp: float | None) -> datetime | None:
    return None if stamp is None else datetime.fromtimestamp(stamp, UTC)


def breaker_state(breaker: Breaker | None, now: float) -> dict[str, Any]:
    """A breaker as the API shows it (None: never used, so closed)."""
    if breaker is None:
        breaker = Breaker()
    state = breaker.state(now)
    open_until = time.time() + (breaker.open_until - now) if state == "open" else None
    return {
        "state": state,
        "open_until": _when(open_until),
        "consecutive_failures": breaker.streak,
        "last_error": breaker.last_error,
        "last_error_at": _when(breaker.last_error_at),
    }


def deployment_state(router: Router, deployment: Deployment, now: float) -> dict[str, Any]:
    return {
        "id": deployment.id,
        "provider": deployment.provider,
        "model": deployment.model,
        "base_url": public_url(deployment.base_url),
        "weight": deployment.weight,
        "breaker": breaker_state(router.breakers.get(deployment.id), now),
    }


@router.get("/api/gateway/deployments", response_model=DeploymentList)
def list_deployments(
    runtime: RuntimeDep,
    caller: Caller,
    model: Annotated[str | None, Query(max_length=200, description="Only this alias")] = None,
) -> Any:
    """Each model alias's deployments with their circuit-breaker state in this process
    (superusers and admin keys)."""
    from pilothouse.gateway.plugin import gateway_of

    if not (caller.is_superuser or caller.admin_orgs):
        raise Forbidden("only superusers and admin keys may see the gateway's deployments")
    gateway = gateway_of(runtime)
    routes = [gateway.router.route(model)] if model is not None else None
    if routes is None:
        routes = list(gateway.source.get().models.values())
    now = time.monotonic()
    return {
        "data": [
            {
                "model": route.name,
                "deployments": [
                    deployment_state(gateway.router, d, now) for d in route.deployments
                ],
                "fallbacks": list(route.fallbacks),
            }
            for route in routes
        ]
    }


__all__ = ["router"]
