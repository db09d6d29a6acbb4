"""Tables and queries for organizations, projects, users, memberships and API keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from pilothouse.errors import Conflict, NotFound
from pilothouse.store.metadata import metadata
from pilothouse.store.types import BigID, JSONDoc, UTCDateTime, utcnow

organizations = sa.Table(
    "organizations",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column(
        "org_id",
        BigID,
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("retention_days", sa.Integer, nullable=True),
    sa.Column("settings", JSONDoc, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("org_id", "name"),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("is_superuser", sa.Boolean, nullable=False),
    sa.Column("is_active", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column(
        "project_id", BigID, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column(
        "user_id",
        BigID,
        sa.ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("project_id", "user_id"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column(
        "project_id",
        BigID,
        sa.ForeignKey("projects.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("prefix", sa.String(32), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("scopes", JSONDoc, nullable=False),
    sa.Column("limits", JSONDoc, nullable=False),
    sa.Column("created_by", BigID, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)


def _one(conn: Connection, query: sa.Select[Any], what: str) -> RowMapping:
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"{what} not found")
    return row


def page(
    conn: Connection,
    table: sa.Table,
    *,
    where: Sequence[sa.ColumnElement[bool]] = (),
    after: int | None = None,
    limit: int = 50,
) -> tuple[list[RowMapping], int | None]:
    """One page of rows ordered by id, and the id to continue after (None at the end)."""
    query = sa.select(table).where(*where).order_by(table.c.id).limit(limit + 1)
    if after is not None:
        query = query.where(table.c.id > after)
    rows = list(conn.execute(query).mappings())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["id"] if more else None)


# --- organizations ---------------------------------------------------------------------------


def create_org(conn: Connection, name: str) -> RowMapping:
    if conn.execute(sa.select(organizations.c.id).where(organizations.c.name == name)).first():
        raise Conflict(f"organization {name!r} already exists", param="name")
    new_id = conn.execute(
        organizations.insert().values(name=name, created_at=utcnow())
    ).inserted_primary_key
    assert new_id is not None
    return get_org(conn, new_id[0])


def get_org(conn: Connection, org_id: int) -> RowMapping:
    return _one(
        conn, sa.select(organizations).where(organizations.c.id == org_id), f"organization {org_id}"
    )


def org_by_name(conn: Connection, name: str) -> RowMapping | None:
    return (
        conn.execute(sa.select(organizations).where(organizations.c.name == name))
        .mappings()
        .first()
    )


# --- projects --------------------------------------------------------------------------------


def create_project(
    conn: Connection, org_id: int, name: str, retention_days: int | None = None
) -> RowMapping:
    get_org(conn, org_id)
    taken = sa.select(projects.c.id).where(projects.c.org_id == org_id, projects.c.name == name)
    if conn.execute(taken).first():
        raise Conflict(f"project {name!r} already exists in organization {org_id}", param="name")
    result = conn.execute(
        projects.insert().values(
            org_id=org_id,
            name=name,
            retention_days=retention_days,
            settings={},
            created_at=utcnow(),
        )
    )
    assert result.inserted_primary_key is not None
    return get_project(conn, result.inserted_primary_key[0])


def get_project(conn: Connection, project_id: int) -> RowMapping:
    return _one(
        conn, sa.select(projects).where(projects.c.id == project_id), f"project {project_id}"
    )


def project_by_name(conn: Connection, name: str, org_id: int | None = None) -> RowMapping:
    query = sa.select(projects).where(projects.c.name == name).order_by(projects.c.id)
    if org_id is not None:
        query = query.where(projects.c.org_id == org_id)
    return _one(conn, query, f"project {name!r}")


def update_project(conn: Connection, project_id: int, **values: Any) -> RowMapping:
    current = get_project(conn, project_id)
    if "name" in values and values["name"] != current["name"]:
        taken = sa.select(projects.c.id).where(
            projects.c.org_id == current["org_id"], projects.c.name == values["name"]
        )
        if conn.execute(taken).first():
            raise Conflict(f"project {values['name']!r} already exists", param="name")
    if values:
        conn.execute(projects.update().where(projects.c.id == project_id).values(**values))
    return get_project(conn, project_id)


def delete_project(conn: Connection, project_id: int) -> None:
    get_project(conn, project_id)
    conn.execute(projects.delete().where(projects.c.id == project_id))


# --- users -----------------------------------------------------------------------------------


def create_user(
    conn: Connection, email: str, name: str, password_hash: str, *, is_superuser: bool = False
) -> RowMapping:
    email = email.strip().lower()
    if conn.execute(sa.select(users.c.id).where(users.c.email == email)).first():
        raise Conflict(f"user {email!r} already exists", param="email")
    result = conn.execute(
        users.insert().values(
            email=email,
            name=name,
            password_hash=password_hash,
            is_superuser=is_superuser,
            is_active=True,
            created_at=utcnow(),
        )
    )
    assert result.inserted_primary_key is not None
    return get_user(conn, result.inserted_primary_key[0])


def get_user(conn: Connection, user_id: int) -> RowMapping:
    return _one(conn, sa.select(users).where(users.c.id == user_id), f"user {user_id}")


def user_by_email(conn: Connection, email: str) -> RowMapping | None:
    query = sa.select(users).where(users.c.email == email.strip().lower())
    return conn.execute(query).mappings().first()


def update_user(conn: Connection, user_id: int, **values: Any) -> RowMapping:
    get_user(conn, user_id)
    if values:
        conn.execute(users.update().where(users.c.id == user_id).values(**values))
    return get_user(conn, user_id)


def count_users(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one())


# --- memberships -----------------------------------------------------------------------------


def set_membership(conn: Connection, project_id: int, user_id: int, role: str) -> RowMapping:
    """Give ``user_id`` ``role`` on the project, creating or updating the membership."""
    get_project(conn, project_id)
    get_user(conn, user_id)
    where = (memberships.c.project_id == project_id, memberships.c.user_id == user_id)
    if conn.execute(sa.select(memberships.c.id).where(*where)).first():
        conn.execute(memberships.update().where(*where).values(role=role))
    else:
        conn.execute(
            memberships.insert().values(
                project_id=project_id, user_id=user_id, role=role, created_at=utcnow()
            )
        )
    return _one(conn, sa.select(memberships).where(*where), "membership")


def get_membership(conn: Connection, project_id: int, user_id: int) -> RowMapping:
    query = sa.select(memberships).where(
        memberships.c.project_id == project_id, memberships.c.user_id == user_id
    )
    return _one(conn, query, f"membership of user {user_id} in project {project_id}")


def delete_membership(conn: Connection, project_id: int, user_id: int) -> None:
    get_membership(conn, project_id, user_id)
    conn.execute(
        memberships.delete().where(
            memberships.c.project_id == project_id, memberships.c.user_id == user_id
        )
    )


def roles_of(conn: Connection, user_id: int) -> dict[int, str]:
    """Project id -> role for one user."""
    query = sa.select(memberships.c.project_id, memberships.c.role).where(
        memberships.c.user_id == user_id
    )
    return {row.project_id: row.role for row in conn.execute(query)}


# --- API keys --------------------------------------------------------------------------------


def insert_key(
    conn: Connection,
    *,
    project_id: int,
    name: str,
    prefix: str,
    key_hash: str,
    scopes: list[str],
    limits: dict[str, Any] | None = None,
    expires_at: datetime | None = None,
    created_by: int | None = None,
) -> RowMapping:
    get_project(conn, project_id)
    result = conn.execute(
        api_keys.insert().values(
            project_id=project_id,
            name=name,
            prefix=prefix,
            key_hash=key_hash,
            scopes=scopes,
            limits=limits or {},
            expires_at=expires_at,
            created_by=created_by,
            created_at=utcnow(),
        )
    )
    assert result.inserted_primary_key is not None
    return get_key(conn, result.inserted_primary_key[0])


def get_key(conn: Connection, key_id: int) -> RowMapping:
    return _one(conn, sa.select(api_keys).where(api_keys.c.id == key_id), f"API key {key_id}")


def key_by_hash(conn: Connection, key_hash: str) -> RowMapping | None:
    """The key with this hash, joined with its project's organization."""
    query = (
        sa.select(api_keys, projects.c.org_id)
        .join(projects, projects.c.id == api_keys.c.project_id)
        .where(api_keys.c.key_hash == key_hash)
    )
    return conn.execute(query).mappings().first()


def revoke_key(conn: Connection, key_id: int) -> RowMapping:
    key = get_key(conn, key_id)
    if key["revoked_at"] is None:
        conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(revoked_at=utcnow()))
    return get_key(conn, key_id)
