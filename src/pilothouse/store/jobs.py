"""Table and queries for background-job status (the queue itself lives in huey)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from pilothouse.errors import NotFound
from pilothouse.store.metadata import metadata
from pilothouse.store.types import JSONDoc, UTCDateTime, utcnow

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, index=True),
    sa.Column("project_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("args", JSONDoc, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("enqueued_at", UTCDateTime, nullable=False, index=True),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
)

STATUSES = ("queued", "running", "retrying", "succeeded", "failed")


def record_enqueued(
    conn: Connection, job_id: str, name: str, args: dict[str, Any], project_id: int | None
) -> None:
    conn.execute(
        jobs.insert().values(
            id=job_id,
            name=name,
            project_id=project_id,
            status="queued",
            args=args,
            attempts=0,
            enqueued_at=utcnow(),
        )
    )


def record_status(
    conn: Connection, job_id: str, name: str, status: str, error: str | None = None
) -> None:
    """Move a job to ``status``; creates the row for jobs not enqueued by us (periodic ones)."""
    now = utcnow()
    values: dict[str, Any] = {"status": status}
    if status == "running":
        values["started_at"] = now
        values["attempts"] = jobs.c.attempts + 1
    if status in ("succeeded", "failed"):
        values["finished_at"] = now
    if error is not None:
        values["error"] = error
    updated = conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values))
    if updated.rowcount == 0:
        conn.execute(
            jobs.insert().values(
                id=job_id,
                name=name,
                status=status,
                args={},
                error=error,
                attempts=1 if status == "running" else 0,
                enqueued_at=now,
                started_at=now if status == "running" else None,
                finished_at=now if status in ("succeeded", "failed") else None,
            )
        )


def get_job(conn: Connection, job_id: str) -> RowMapping:
    row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).mappings().first()
    if row is None:
        raise NotFound(f"job {job_id!r} not found")
    return row


def list_jobs(
    conn: Connection,
    *,
    status: str | None = None,
    name: str | None = None,
    project_ids: set[int] | None = None,
    before: tuple[datetime, str] | None = None,
    limit: int = 50,
) -> list[RowMapping]:
    """Newest first; ``before`` is the (enqueued_at, id) of the last row of the previous page."""
    query = sa.select(jobs).order_by(jobs.c.enqueued_at.desc(), jobs.c.id.desc()).limit(limit)
    if status:
        query = query.where(jobs.c.status == status)
    if name:
        query = query.where(jobs.c.name == name)
    if project_ids is not None:
        query = query.where(jobs.c.project_id.in_(project_ids))
    if before is not None:
        query = query.where(
            sa.tuple_(jobs.c.enqueued_at, jobs.c.id)
            < sa.tuple_(sa.literal(before[0], UTCDateTime()), sa.literal(before[1]))
        )
    return list(conn.execute(query).mappings())
