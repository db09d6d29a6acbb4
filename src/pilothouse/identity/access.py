"""Who is calling (a :class:`Principal`) and what they may do.

Roles on a project grant scopes:

========  ===========================================
owner     read, write, admin, gateway, ingest (and may delete the project)
admin     read, write, admin, gateway, ingest
member    read, write, gateway, ingest
viewer    read
========  ===========================================

An API key carries its scopes on its own project. A key with the ``admin`` scope administers
its project's organization (creates projects there, manages their keys and members). A
superuser may do everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pilothouse.errors import Forbidden

SCOPES = ("gateway", "ingest", "read", "write", "admin")
ROLES = ("owner", "admin", "member", "viewer")

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "owner": frozenset(SCOPES),
    "admin": frozenset(SCOPES),
    "member": frozenset({"read", "write", "gateway", "ingest"}),
    "viewer": frozenset({"read"}),
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user (by password/session) or an API key."""

    kind: str  # "user" or "key"
    id: int
    name: str
    is_superuser: bool = False
    #: project id -> scopes the principal holds there
    grants: dict[int, frozenset[str]] = field(default_factory=dict)
    #: organizations the principal administers
    admin_orgs: frozenset[int] = frozenset()
    #: project id -> role (users only)
    roles: dict[int, str] = field(default_factory=dict)
    #: the key's own project (keys only)
    project_id: int | None = None

    def can(self, scope: str, project_id: int, org_id: int | None = None) -> bool:
        if self.is_superuser:
            return True
        if org_id is not None and org_id in self.admin_orgs:
            return True
        return scope in self.grants.get(project_id, frozenset())

    def require(self, scope: str, project_id: int, org_id: int | None = None) -> None:
        """Raise Forbidden unless the principal holds ``scope`` on the project."""
        if not self.can(scope, project_id, org_id):
            raise Forbidden(
                f"{self.kind} {self.name!r} lacks the {scope!r} scope on project {project_id}"
            )

    def require_org_admin(self, org_id: int) -> None:
        if not (self.is_superuser or org_id in self.admin_orgs):
            raise Forbidden(f"{self.kind} {self.name!r} does not administer organization {org_id}")

    def require_superuser(self) -> None:
        if not self.is_superuser:
            raise Forbidden(f"{self.kind} {self.name!r} is not a superuser")

    def visible_projects(self) -> set[int] | None:
        """Project ids the principal may read; None means all of them."""
        if self.is_superuser:
            return None
        return {p for p, scopes in self.grants.items() if "read" in scopes}


def user_principal(
    user_id: int, email: str, is_superuser: bool, roles: dict[int, str]
) -> Principal:
    return Principal(
        kind="user",
        id=user_id,
        name=email,
        is_superuser=is_superuser,
        grants={p: ROLE_SCOPES[r] for p, r in roles.items()},
        roles=dict(roles),
    )
