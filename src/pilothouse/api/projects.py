"""Organizations, projects and memberships."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query, Response
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
from pilothouse.errors import BadRequest, Forbidden
from pilothouse.store import identity as store

router = APIRouter(tags=["projects"])

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
Id = Annotated[int, Path(ge=1, le=2**62)]
Role = Literal["owner", "admin", "member", "viewer"]


class Org(BaseModel):
    id: int
    name: str
    created_at: datetime


class OrgCreate(Strict):
    name: Name


class Project(BaseModel):
    id: int
    org_id: int
    name: str
    retention_days: int | None
    created_at: datetime


class ProjectCreate(Strict):
    name: Name
    org_id: int | None = Field(None, ge=1, le=2**62, description="Defaults to the caller's")
    retention_days: int | None = Field(None, ge=1, le=36500)


class ProjectUpdate(Strict):
    name: Name | None = None
    retention_days: int | None = Field(None, ge=1, le=36500)


class Member(BaseModel):
    project_id: int
    user_id: int
    role: Role
    created_at: datetime


class MemberSet(Strict):
    role: Role


def _project(row: Any) -> Project:
    return Project.model_validate(dict(row))


@router.get("/api/orgs", response_model=Page[Org])
def list_orgs(
    runtime: RuntimeDep, caller: Caller, limit: LimitQ = 50, cursor: CursorQ = None
) -> Any:
    """Organizations the caller can see."""
    where: list[sa.ColumnElement[bool]] = []
    visible = caller.visible_projects()
    if visible is not None:
        org_ids = sa.select(store.projects.c.org_id).where(store.projects.c.id.in_(visible))
        where.append(
            store.organizations.c.id.in_(org_ids) | store.organizations.c.id.in_(caller.admin_orgs)
        )
    with runtime.db.read() as conn:
        rows, nxt = store.page(
            conn, store.organizations, where=where, after=int_cursor(cursor), limit=limit
        )
    return {"data": [dict(r) for r in rows], "next_cursor": encode_cursor(nxt)}


@router.post("/api/orgs", response_model=Org, status_code=201)
def create_org(body: OrgCreate, runtime: RuntimeDep, caller: Caller) -> Any:
    """Create an organization (superusers only)."""
    caller.require_superuser()
    with runtime.db.write() as conn:
        return dict(store.create_org(conn, body.name))


@router.get("/api/projects", response_model=Page[Project])
def list_projects(
    runtime: RuntimeDep,
    caller: Caller,
    org_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    limit: LimitQ = 50,
    cursor: CursorQ = None,
) -> Any:
    """Projects the caller can read, optionally filtered by organization or exact name."""
    t = store.projects
    where: list[sa.ColumnElement[bool]] = []
    visible = caller.visible_projects()
    if visible is not None:
        where.append(t.c.id.in_(visible) | t.c.org_id.in_(caller.admin_orgs))
    if org_id is not None:
        where.append(t.c.org_id == org_id)
    if name is not None:
        where.append(t.c.name == name)
    with runtime.db.read() as conn:
        rows, nxt = store.page(conn, t, where=where, after=int_cursor(cursor), limit=limit)
    return {"data": [dict(r) for r in rows], "next_cursor": encode_cursor(nxt)}


@router.post("/api/projects", response_model=Project, status_code=201)
def create_project(body: ProjectCreate, runtime: RuntimeDep, caller: Caller) -> Any:
    """Create a project in an organization the caller administers."""
    with runtime.db.write() as conn:
        org_id = body.org_id
        if org_id is None:
            if caller.admin_orgs:
                org_id = min(caller.admin_orgs)
            elif caller.is_superuser:
                org_id = conn.execute(sa.select(sa.func.min(store.organizations.c.id))).scalar()
            else:
                raise Forbidden(f"{caller.kind} {caller.name!r} administers no organization")
            if org_id is None:
                raise BadRequest("org_id is required", param="body.org_id")
        caller.require_org_admin(org_id)
        row = store.create_project(conn, org_id, body.name, body.retention_days)
        if caller.kind == "user":
            store.set_membership(conn, row["id"], caller.id, "owner")
    return _project(row)


def load_project(runtime: RuntimeDep, caller: Caller, project_id: int, scope: str) -> Any:
    """The project row, once the caller is checked for ``scope`` on it."""
    with runtime.db.read() as conn:
        row = store.get_project(conn, project_id)
    caller.require(scope, project_id, row["org_id"])
    return row


@router.get("/api/projects/{project_id}", response_model=Project)
def get_project(project_id: Id, runtime: RuntimeDep, caller: Caller) -> Any:
    """One project."""
    return _project(load_project(runtime, caller, project_id, "read"))


@router.patch("/api/projects/{project_id}", response_model=Project)
def update_project(project_id: Id, body: ProjectUpdate, runtime: RuntimeDep, caller: Caller) -> Any:
    """Rename a project or change its retention."""
    load_project(runtime, caller, project_id, "admin")
    values = body.model_dump(exclude_unset=True)
    if values.get("name", "") is None:
        raise BadRequest("name cannot be null", param="body.name")
    with runtime.db.write() as conn:
        return _project(store.update_project(conn, project_id, **values))


@router.delete("/api/projects/{project_id}", status_code=204)
def delete_project(project_id: Id, runtime: RuntimeDep, caller: Caller) -> Response:
    """Delete a project and everything in it (owners and organization admins)."""
    row = load_project(runtime, caller, project_id, "read")
    if caller.roles.get(project_id) != "owner":
        caller.require_org_admin(row["org_id"])
    with runtime.db.write() as conn:
        store.delete_project(conn, project_id)
    runtime.keys.forget_project(project_id)
    return Response(status_code=204)


@router.get("/api/projects/{project_id}/members", response_model=Page[Member])
def list_members(
    project_id: Id, runtime: RuntimeDep, caller: Caller, limit: LimitQ = 50, cursor: CursorQ = None
) -> Any:
    """Members of the project and their roles."""
    load_project(runtime, caller, project_id, "read")
    t = store.memberships
    with runtime.db.read() as conn:
        rows, nxt = store.page(
            conn, t, where=[t.c.project_id == project_id], after=int_cursor(cursor), limit=limit
        )
    return {"data": [dict(r) for r in rows], "next_cursor": encode_cursor(nxt)}


@router.put("/api/projects/{project_id}/members/{user_id}", response_model=Member)
def set_member(
    project_id: Id, user_id: Id, body: MemberSet, runtime: RuntimeDep, caller: Caller
) -> Any:
    """Give a user a role on the project (creates or changes the membership)."""
    load_project(runtime, caller, project_id, "admin")
    if body.role == "owner" and caller.roles.get(project_id) != "owner" and not caller.is_superuser:
        raise Forbidden("only an owner can make another owner")
    with runtime.db.write() as conn:
        return dict(store.set_membership(conn, project_id, user_id, body.role))


@router.delete("/api/projects/{project_id}/members/{user_id}", status_code=204)
def remove_member(project_id: Id, user_id: Id, runtime: RuntimeDep, caller: Caller) -> Response:
    """Remove a user from the project."""
    load_project(runtime, caller, project_id, "admin")
    with runtime.db.write() as conn:
        store.delete_membership(conn, project_id, user_id)
    return Response(status_code=204)
