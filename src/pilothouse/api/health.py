"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import JSONResponse

from pilothouse.api.deps import RuntimeDep
from pilothouse.store import migrate

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready"}})
def readyz(runtime: RuntimeDep) -> Any:
    """The database answers and its schema is current."""
    checks: dict[str, str] = {}
    try:
        runtime.db.ping()
        checks["database"] = "ok"
        checks["migrations"] = "ok" if migrate.is_current(runtime.db) else "pending"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready, reported not raised
        checks["database"] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values()) and len(checks) == 2
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
        headers={} if ready else {"Retry-After": "5"},
    )
