"""API keys of a project: created (shown once), listed, revoked."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from pilothouse.api.deps import (
    Caller,
    CursorQ,
    LimitQ,
    Page,
    RuntimeDep,
    Strict,
    encode_cursor,
    int_cursor,
)
from pilothouse.api.projects import Id, Name, load_project
from pilothouse.errors import BadRequest, NotFound
from pilothouse.store import identity as store
from pilothouse.store.types import utcnow

router = APIRouter(tags=["keys"])

Scope = Literal["gateway", "ingest", "read", "write", "admin"]


class Key(BaseModel):
    id: int
    project_id: int
    name: str
    prefix: str = Field(description="The first characters of the key, to recognise it")
    scopes: list[Scope]
    limits: dict[str, Any]
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class NewKey(Key):
    key: str = Field(description="The key itself. Shown only this once.")


class KeyCreate(Strict):
    name: Name
    scopes: Annotated[list[Scope], Field(min_length=1)]
    expires_at: datetime | None = Field(None, description="When the key stops working")
    expires_in_days: int | None = Field(None, ge=1, le=36500)
    limits: dict[str, float] = Field(
        default_factory=dict,
        description="Gateway limits such as rpm, tpm, max_concurrent, budget_usd_month",
    )


def _key(row: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(row).items() if k != "key_hash"}


@router.get("/api/projects/{project_id}/keys", response_model=Page[Key])
def list_keys(
    project_id: Id, runtime: RuntimeDep, caller: Caller, limit: LimitQ = 50, cursor: CursorQ = None
) -> Any:
    """Keys of the project, oldest first (prefixes only; needs `admin`)."""
    load_project(runtime, caller, project_id, "admin")
    t = store.api_keys
    with runtime.db.read() as conn:
        rows, nxt = store.page(
            conn, t, where=[t.c.project_id == project_id], after=int_cursor(cursor), limit=limit
        )
    return {"data": [_key(r) for r in rows], "next_cursor": encode_cursor(nxt)}


@router.post("/api/projects/{project_id}/keys", response_model=NewKey, status_code=201)
def create_key(project_id: Id, body: KeyCreate, runtime: RuntimeDep, caller: Caller) -> Any:
    """Create a key. The response holds the key itself; it is never shown again."""
    load_project(runtime, caller, project_id, "admin")
    if body.expires_at is not None and body.expires_in_days is not None:
        raise BadRequest("give expires_at or expires_in_days, not both", param="body.expires_at")
    expires_at = body.expires_at
    if expires_at is not None and expires_at.tzinfo is None:
        raise BadRequest(
            "expires_at needs a timezone (e.g. 2030-01-01T00:00:00Z)", param="body.expires_at"
        )
    if body.expires_in_days is not None:
        expires_at = utcnow() + timedelta(days=body.expires_in_days)
    key, row = runtime.keys.create(
        project_id,
        body.name,
        list(body.scopes),
        expires_at=expires_at,
        limits=body.limits,
        created_by=caller.id if caller.kind == "user" else None,
    )
    return {**_key(row), "key": key}


def _owned_key(runtime: RuntimeDep, project_id: int, key_id: int) -> Any:
    with runtime.db.read() as conn:
        row = store.get_key(conn, key_id)
    if row["project_id"] != project_id:
        raise NotFound(f"API key {key_id} not found in project {project_id}")
    return row


@router.get("/api/projects/{project_id}/keys/{key_id}", response_model=Key)
def get_key(project_id: Id, key_id: Id, runtime: RuntimeDep, caller: Caller) -> Any:
    """One key of the project (its prefix, never the key)."""
    load_project(runtime, caller, project_id, "admin")
    return _key(_owned_key(runtime, project_id, key_id))


@router.delete("/api/projects/{project_id}/keys/{key_id}", response_model=Key)
def revoke_key(project_id: Id, key_id: Id, runtime: RuntimeDep, caller: Caller) -> Any:
    """Revoke a key; it stops working at once."""
    load_project(runtime, caller, project_id, "admin")
    _owned_key(runtime, project_id, key_id)
    return _key(runtime.keys.revoke(key_id))
