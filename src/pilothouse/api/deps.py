"""Dependencies shared by the API routes: the runtime, the caller, pagination."""

from __future__ import annotations

import base64
import binascii
import math
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query, Request
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)
from pydantic import BaseModel, ConfigDict, model_validator

from pilothouse.errors import BadRequest, Unauthorized
from pilothouse.identity.access import Principal, user_principal
from pilothouse.identity.passwords import verify_password
from pilothouse.runtime import Runtime
from pilothouse.store import identity as store

bearer = HTTPBearer(auto_error=False, description="A project API key: `Bearer ph-...`")
basic = HTTPBasic(auto_error=False, description="A user's email and password")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def authenticate(
    runtime: RuntimeDep,
    token: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    login: Annotated[HTTPBasicCredentials | None, Depends(basic)],
) -> Principal:
    """The caller: a Bearer API key, or HTTP Basic email:password."""
    if token is not None:
        return runtime.keys.verify(token.credentials).principal
    if login is not None:
        with runtime.db.read() as conn:
            user = store.user_by_email(conn, login.username)
            ok = user is not None and user["is_active"]
            ok = ok and verify_password(user["password_hash"], login.password)  # type: ignore[index]
            if not ok or user is None:
                raise Unauthorized("wrong email or password", code="invalid_credentials")
            roles = store.roles_of(conn, user["id"])
        return user_principal(user["id"], user["email"], user["is_superuser"], roles)
    raise Unauthorized(
        "missing credentials: send 'Authorization: Bearer <API key>'", code="missing_credentials"
    )


Caller = Annotated[Principal, Depends(authenticate)]

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of results; pass ``next_cursor`` as ``cursor`` to get the next one."""

    data: list[T]
    next_cursor: str | None


class Strict(BaseModel):
    """Request bodies: unknown fields are an error, not silently ignored; numbers are finite
    (NaN and Infinity are not JSON, and PostgreSQL's JSONB refuses them)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _finite_numbers_only(cls, data: Any) -> Any:
        # allow_inf_nan covers float fields; this covers free-form JSON (dict[str, Any]).
        where = _non_finite(data, "")
        if where is not None:
            raise ValueError(
                f"{where or 'value'} is not a finite number (NaN and Infinity are not JSON)"
            )
        return data


def _non_finite(value: Any, path: str) -> str | None:
    """The path of the first NaN or infinite number in ``value``, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def encode_cursor(value: int | str | None) -> str | None:
    if value is None:
        return None
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest("cursor is not one this API returned", param="cursor") from None


def int_cursor(cursor: str | None) -> int | None:
    raw = decode_cursor(cursor)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise BadRequest("cursor is not one this API returned", param="cursor")
    return int(raw)


LimitQ = Annotated[int, Query(ge=1, le=500, description="Page size")]
CursorQ = Annotated[str | None, Query(description="`next_cursor` of the previous page")]


ProjectQ = Annotated[
    int | None, Query(ge=1, le=2**62, description="Project; defaults to the API key's own")
]


def project_of(runtime: Runtime, caller: Principal, project_id: int | None, scope: str) -> int:
    """The project a call is about: ``project_id`` or the key's own, checked for ``scope``.

    A user with access to exactly one project may leave ``project_id`` out.
    """
    chosen = project_id or caller.project_id
    if chosen is None:
        visible = caller.visible_projects()
        if visible is not None and len(visible) == 1:
            chosen = next(iter(visible))
        else:
            raise BadRequest("project_id is required", param="query.project_id")
    if not caller.can(scope, chosen):
        # Organization administrators hold no per-project grants: look the organization up.
        with runtime.db.read() as conn:
            org_id = store.get_project(conn, chosen)["org_id"]
        caller.require(scope, chosen, org_id)
    return chosen
