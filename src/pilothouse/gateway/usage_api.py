"""Management API of gateway limits and spend: a project's limits, and what its keys spent.

Key limits are set with the key (``POST /api/projects/{id}/keys``); project limits, which every
key of the project shares, live in the project's ``settings.limits`` and are set here.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from pilothouse.api.deps import Caller, RuntimeDep, Strict
from pilothouse.api.projects import load_project
from pilothouse.errors import BadRequest
from pilothouse.runtime import Runtime
from pilothouse.store import gateway as store
from pilothouse.store import identity as identity_store

log = logging.getLogger(__name__)

router = APIRouter(tags=["gateway"])

Id = Annotated[int, Path(ge=1, le=2**62)]
Count = Annotated[int | None, Field(None, ge=0, le=10**12)]
Usd = Annotated[float | None, Field(None, ge=0, le=10**9)]
SinceQ = Annotated[date | None, Query(description="First day (UTC); default: 1st of the month")]
UntilQ = Annotated[date | None, Query(description="Last day (UTC), inclusive; default: today")]
#: Longest spend report, in days.
MAX_DAYS = 366


class Limits(Strict):
    """Limits shared by every key of a project; omitted or null means unlimited."""

    rpm: Count = None
    tpm: Count = None
    max_concurrent: Count = None
    budget_usd_day: Usd = None
    budget_usd_month: Usd = None


class SpendRow(BaseModel):
    key_id: int | None = Field(description="The API key; null for spend without a key")
    day: date
    cost_usd: float
    input_tokens: int
    output_tokens: int
    requests: int


class Spend(BaseModel):
    project_id: int
    since: date
    until: date
    total_usd: float
    data: list[SpendRow]


@router.get("/api/projects/{project_id}/limits", response_model=Limits)
def get_limits(project_id: Id, runtime: RuntimeDep, caller: Caller) -> Any:
    """The project's gateway limits."""
    settings = load_project(runtime, caller, project_id, "read")["settings"] or {}
    limits = settings.get("limits") if isinstance(settings, dict) else None
    known = set(Limits.model_fields)
    return {k: v for k, v in (limits or {}).items() if k in known}


@router.put("/api/projects/{project_id}/limits", response_model=Limits)
def set_limits(project_id: Id, body: Limits, runtime: RuntimeDep, caller: Caller) -> Any:
    """Replace the project's gateway limits (this process applies them at once, others within
    ``key_cache_ttl`` seconds)."""
    row = load_project(runtime, caller, project_id, "admin")
    limits = body.model_dump(exclude_none=True)
    settings = dict(row["settings"] or {})
    settings["limits"] = limits
    with runtime.db.write() as conn:
        identity_store.update_project(conn, project_id, settings=settings)
    accounting = _accounting(runtime)
    if accounting is not None:
        accounting.forget_project(project_id)
    return limits


@router.get("/api/projects/{project_id}/spend", response_model=Spend)
async def get_spend(
    project_id: Id,
    runtime: RuntimeDep,
    caller: Caller,
    since: Annotated[
        date | None, Query(description="First day (UTC); default: 1st of month")
    ] = None,
    until: Annotated[
        date | None, Query(description="Last day (UTC), inclusive; default: today")
    ] = None,
) -> Any:
    """Gateway spend of the project per key and UTC day, including spend not yet flushed."""
    await asyncio.to_thread(load_project, runtime, caller, project_id, "read")
    today = datetime.now(UTC).date()
    until = until or today
    since = since or until.replace(day=1)
    if since > until:
        raise BadRequest("since must not be after until", param="since")
    if until - since > timedelta(days=MAX_DAYS):
        raise BadRequest(f"at most {MAX_DAYS} days per report", param="since")
    accounting = _accounting(runtime)
    if accounting is not None:
        try:
            await accounting.ledger.flush()
        except Exception:
            log.warning("could not flush gateway spend before a report", exc_info=True)
    rows = await asyncio.to_thread(_spend, runtime, project_id, since, until)
    data = [
        {
            "key_id": None if r.key_id == store.NO_KEY else r.key_id,
            "day": r.period_start,
            "cost_usd": r.cost_usd,
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
            "requests": r.requests,
        }
        for r in rows
    ]
    total = sum(r.cost_usd for r in rows)
    return {
        "project_id": project_id,
        "since": since,
        "until": until,
        "total_usd": total,
        "data": data,
    }


def _spend(runtime: Runtime, project_id: int, since: date, until: date) -> list[store.SpendDelta]:
    with runtime.db.read() as conn:
        return store.project_spend(conn, project_id, since, until)


def _accounting(runtime: Runtime) -> Any:
    from pilothouse.gateway.plugin import STATE_KEY

    gateway = runtime.state.get(STATE_KEY)
    return getattr(gateway, "accounting", None)


__all__ = ["router"]
