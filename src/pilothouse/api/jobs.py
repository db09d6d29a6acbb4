"""Background jobs: status of every run, and enqueueing by superusers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from pilothouse.api.deps import (
    Caller,
    CursorQ,
    LimitQ,
    Page,
    RuntimeDep,
    Strict,
    decode_cursor,
    encode_cursor,
)
from pilothouse.errors import BadRequest, Forbidden, NotFound
from pilothouse.store import jobs as store

router = APIRouter(tags=["jobs"])

JobId = Annotated[str, Path(min_length=1, max_length=64)]


class Job(BaseModel):
    id: str
    name: str
    project_id: int | None
    status: str = Field(description="queued, running, retrying, succeeded or failed")
    args: dict[str, Any]
    attempts: int
    error: str | None
    enqueued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    args: dict[str, Any] = Field(default_factory=dict)


def _before(cursor: str | None) -> tuple[datetime, str] | None:
    raw = decode_cursor(cursor)
    if raw is None:
        return None
    stamp, _, job_id = raw.partition("|")
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        raise BadRequest("cursor is not one this API returned", param="cursor") from None
    if when.tzinfo is None or not job_id:
        raise BadRequest("cursor is not one this API returned", param="cursor")
    return when, job_id


@router.get("/api/jobs", response_model=Page[Job])
def list_jobs(
    runtime: RuntimeDep,
    caller: Caller,
    status: Annotated[str | None, Query(max_length=20)] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    limit: LimitQ = 50,
    cursor: CursorQ = None,
) -> Any:
    """Job runs, newest first. Non-superusers see jobs of projects they can read."""
    with runtime.db.read() as conn:
        rows = store.list_jobs(
            conn,
            status=status,
            name=name,
            project_ids=caller.visible_projects(),
            before=_before(cursor),
            limit=limit + 1,
        )
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = f"{rows[-1]['enqueued_at'].isoformat()}|{rows[-1]['id']}" if more else None
    return {"data": [dict(r) for r in rows], "next_cursor": encode_cursor(nxt)}


@router.get("/api/jobs/{job_id}", response_model=Job)
def get_job(job_id: JobId, runtime: RuntimeDep, caller: Caller) -> Any:
    """One job run: status, attempts, last error."""
    with runtime.db.read() as conn:
        row = store.get_job(conn, job_id)
    visible = caller.visible_projects()
    if visible is not None and row["project_id"] not in visible:
        raise NotFound(f"job {job_id!r} not found")
    return dict(row)


@router.post("/api/jobs", response_model=Job, status_code=202)
def enqueue_job(body: JobCreate, runtime: RuntimeDep, caller: Caller) -> Any:
    """Queue a registered job by name (superusers and admin keys)."""
    if not (caller.is_superuser or caller.admin_orgs):
        raise Forbidden("only superusers and admin keys may enqueue jobs")
    spec = runtime.jobs.specs.get(body.name)
    if spec is None or spec.schedule:
        raise NotFound(f"no job named {body.name!r} can be enqueued", param="body.name")
    job_id = runtime.jobs.enqueue(body.name, project_id=caller.project_id, **body.args)
    with runtime.db.read() as conn:
        return dict(store.get_job(conn, job_id))
