"""Users: superusers manage them; everyone can see and edit themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

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
from pilothouse.api.projects import Id, Name
from pilothouse.errors import Forbidden
from pilothouse.identity.passwords import MIN_LENGTH, hash_password
from pilothouse.store import identity as store

router = APIRouter(tags=["users"])

Email = Annotated[str, Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
Password = Annotated[str, Field(min_length=MIN_LENGTH, max_length=1024)]


class User(BaseModel):
    id: int
    email: str
    name: str
    is_superuser: bool
    is_active: bool
    created_at: datetime


class UserCreate(Strict):
    email: Email
    name: Name
    password: Password
    is_superuser: bool = False


class UserUpdate(Strict):
    name: Name | None = None
    password: Password | None = None
    is_active: bool | None = None
    is_superuser: bool | None = None


class Me(BaseModel):
    kind: str = Field(description="'user' or 'key'")
    id: int
    name: str
    is_superuser: bool
    project_id: int | None
    scopes: dict[str, list[str]] = Field(description="project id -> scopes held there")
    admin_orgs: list[int]


@router.get("/api/me", response_model=Me, tags=["users"])
def me(caller: Caller) -> Any:
    """Who the credentials belong to and what they may do."""
    return Me(
        kind=caller.kind,
        id=caller.id,
        name=caller.name,
        is_superuser=caller.is_superuser,
        project_id=caller.project_id,
        scopes={str(p): sorted(s) for p, s in caller.grants.items()},
        admin_orgs=sorted(caller.admin_orgs),
    )


def _public(row: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(row).items() if k != "password_hash"}


@router.get("/api/users", response_model=Page[User])
def list_users(
    runtime: RuntimeDep, caller: Caller, limit: LimitQ = 50, cursor: CursorQ = None
) -> Any:
    """Every user (superusers only)."""
    caller.require_superuser()
    with runtime.db.read() as conn:
        rows, nxt = store.page(conn, store.users, after=int_cursor(cursor), limit=limit)
    return {"data": [_public(r) for r in rows], "next_cursor": encode_cursor(nxt)}


@router.post("/api/users", response_model=User, status_code=201)
def create_user(body: UserCreate, runtime: RuntimeDep, caller: Caller) -> Any:
    """Create a user (superusers only); the password is stored as an Argon2id hash."""
    caller.require_superuser()
    with runtime.db.write() as conn:
        row = store.create_user(
            conn,
            body.email,
            body.name,
            hash_password(body.password),
            is_superuser=body.is_superuser,
        )
    return _public(row)


def _self_or_superuser(caller: Caller, user_id: int) -> None:
    if not (caller.is_superuser or (caller.kind == "user" and caller.id == user_id)):
        raise Forbidden("only superusers may see or change other users")


@router.get("/api/users/{user_id}", response_model=User)
def get_user(user_id: Id, runtime: RuntimeDep, caller: Caller) -> Any:
    """One user (superusers, or the user themselves)."""
    _self_or_superuser(caller, user_id)
    with runtime.db.read() as conn:
        return _public(store.get_user(conn, user_id))


@router.patch("/api/users/{user_id}", response_model=User)
def update_user(user_id: Id, body: UserUpdate, runtime: RuntimeDep, caller: Caller) -> Any:
    """Change name or password (oneself), or is_active and is_superuser (superusers)."""
    _self_or_superuser(caller, user_id)
    values = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if ("is_superuser" in values or "is_active" in values) and not caller.is_superuser:
        raise Forbidden("only superusers may change is_superuser or is_active")
    if "password" in values:
        values["password_hash"] = hash_password(values.pop("password"))
    with runtime.db.write() as conn:
        return _public(store.update_user(conn, user_id, **values))
