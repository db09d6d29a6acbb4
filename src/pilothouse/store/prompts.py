"""Tables and queries of the prompt registry: prompts, immutable versions, labels, label moves.

A label row names its prompt *and* the version number, and its foreign key is the pair
``(prompt_id, version)`` -> ``prompt_versions``: the schema itself makes it impossible for a
label to point at another prompt's version. Versions are only ever inserted.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, RowMapping

from pilothouse.errors import Conflict, NotFound
from pilothouse.store.metadata import metadata
from pilothouse.store.types import BigID, JSONDoc, UTCDateTime, utcnow

prompts = sa.Table(
    "prompts",
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
    sa.Column("type", sa.String(10), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("tags", JSONDoc, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("project_id", "name"),
)

prompt_versions = sa.Table(
    "prompt_versions",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column("prompt_id", BigID, sa.ForeignKey("prompts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("template_format", sa.String(20), nullable=False),
    sa.Column("template", JSONDoc, nullable=False),
    sa.Column("config", JSONDoc, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("author", sa.String(320), nullable=False),
    sa.Column(
        "author_user_id", BigID, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    ),
    sa.Column(
        "author_key_id", BigID, sa.ForeignKey("api_keys.id", ondelete="SET NULL"), nullable=True
    ),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("prompt_id", "version"),
)

prompt_labels = sa.Table(
    "prompt_labels",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column("prompt_id", BigID, nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_by", sa.String(320), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("prompt_id", "name"),
    sa.ForeignKeyConstraint(
        ["prompt_id", "version"],
        ["prompt_versions.prompt_id", "prompt_versions.version"],
        ondelete="CASCADE",
    ),
)

prompt_label_events = sa.Table(
    "prompt_label_events",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column(
        "prompt_id",
        BigID,
        sa.ForeignKey("prompts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("label", sa.String(64), nullable=False),
    sa.Column("from_version", sa.Integer, nullable=True),
    sa.Column("to_version", sa.Integer, nullable=True),
    sa.Column("actor", sa.String(320), nullable=False),
    sa.Column(
        "actor_user_id", BigID, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    ),
    sa.Column(
        "actor_key_id", BigID, sa.ForeignKey("api_keys.id", ondelete="SET NULL"), nullable=True
    ),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)


# --- prompts ---------------------------------------------------------------------------------


def get_prompt(conn: Connection, project_id: int, name: str, *, lock: bool = False) -> RowMapping:
    """The prompt, or NotFound naming it. ``lock`` serializes writers on PostgreSQL."""
    query = sa.select(prompts).where(prompts.c.project_id == project_id, prompts.c.name == name)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"prompt {name!r} not found in project {project_id}", param="name")
    return row


def find_prompt(conn: Connection, project_id: int, name: str) -> RowMapping | None:
    query = sa.select(prompts).where(prompts.c.project_id == project_id, prompts.c.name == name)
    return conn.execute(query).mappings().first()


def create_prompt(
    conn: Connection,
    project_id: int,
    name: str,
    prompt_type: str,
    description: str = "",
    tags: list[str] | None = None,
) -> RowMapping:
    if find_prompt(conn, project_id, name) is not None:
        raise Conflict(f"prompt {name!r} already exists in project {project_id}", param="name")
    now = utcnow()
    try:
        conn.execute(
            prompts.insert().values(
                project_id=project_id,
                name=name,
                type=prompt_type,
                description=description,
                tags=sorted(set(tags or [])),
                created_at=now,
                updated_at=now,
            )
        )
    except sa.exc.IntegrityError:
        # Another writer created it between our check and insert (PostgreSQL).
        raise Conflict(
            f"prompt {name!r} already exists in project {project_id}", param="name"
        ) from None
    return get_prompt(conn, project_id, name)


def update_prompt(conn: Connection, prompt_id: int, **values: Any) -> None:
    """Change a prompt's free metadata (description, tags); never a version."""
    conn.execute(
        prompts.update().where(prompts.c.id == prompt_id).values(updated_at=utcnow(), **values)
    )


def delete_prompt(conn: Connection, prompt_id: int) -> None:
    conn.execute(prompts.delete().where(prompts.c.id == prompt_id))


def list_prompts(
    conn: Connection,
    project_id: int,
    *,
    search: str | None = None,
    tag: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> tuple[list[RowMapping], str | None]:
    """One page ordered by name, and the name to continue after (None at the end)."""
    query = sa.select(prompts).where(prompts.c.project_id == project_id)
    if search:
        pattern = (
            "%" + search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        query = query.where(
            sa.or_(
                sa.func.lower(prompts.c.name).like(pattern, escape="\\"),
                sa.func.lower(prompts.c.description).like(pattern, escape="\\"),
            )
        )
    if tag:
        query = query.where(_has_tag(conn, tag))
    if after is not None:
        query = query.where(prompts.c.name > after)
    rows = list(conn.execute(query.order_by(prompts.c.name).limit(limit + 1)).mappings())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["name"] if more and rows else None)


def _has_tag(conn: Connection, tag: str) -> sa.ColumnElement[bool] | sa.TextClause:
    if conn.dialect.name == "postgresql":
        return sa.type_coerce(prompts.c.tags, postgresql.JSONB).contains([tag])
    return sa.text(
        "EXISTS (SELECT 1 FROM json_each(prompts.tags) WHERE json_each.value = :tag)"
    ).bindparams(tag=tag)


# --- versions --------------------------------------------------------------------------------


def latest_version(conn: Connection, prompt_id: int) -> RowMapping | None:
    query = (
        sa.select(prompt_versions)
        .where(prompt_versions.c.prompt_id == prompt_id)
        .order_by(prompt_versions.c.version.desc())
        .limit(1)
    )
    return conn.execute(query).mappings().first()


def insert_version(
    conn: Connection,
    prompt_id: int,
    *,
    template_format: str,
    template: Any,
    config: dict[str, Any],
    content_hash: str,
    message: str,
    author: str,
    author_user_id: int | None,
    author_key_id: int | None,
) -> RowMapping:
    """Append the next version (the caller holds the prompt's row lock)."""
    latest = latest_version(conn, prompt_id)
    number = 1 if latest is None else latest["version"] + 1
    conn.execute(
        prompt_versions.insert().values(
            prompt_id=prompt_id,
            version=number,
            template_format=template_format,
            template=template,
            config=config,
            content_hash=content_hash,
            message=message,
            author=author,
            author_user_id=author_user_id,
            author_key_id=author_key_id,
            created_at=utcnow(),
        )
    )
    conn.execute(prompts.update().where(prompts.c.id == prompt_id).values(updated_at=utcnow()))
    return get_version(conn, prompt_id, number)


def get_version(conn: Connection, prompt_id: int, version: int, name: str = "") -> RowMapping:
    query = sa.select(prompt_versions).where(
        prompt_versions.c.prompt_id == prompt_id, prompt_versions.c.version == version
    )
    row = conn.execute(query).mappings().first()
    if row is None:
        what = f" of prompt {name!r}" if name else ""
        raise NotFound(f"version {version}{what} not found", param="version")
    return row


def list_versions(
    conn: Connection, prompt_id: int, *, before: int | None = None, limit: int = 50
) -> tuple[list[RowMapping], int | None]:
    """Newest first; the version number to continue before (None at the end)."""
    query = (
        sa.select(prompt_versions)
        .where(prompt_versions.c.prompt_id == prompt_id)
        .order_by(prompt_versions.c.version.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(prompt_versions.c.version < before)
    rows = list(conn.execute(query).mappings())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["version"] if more else None)


# --- labels ----------------------------------------------------------------------------------


def labels_of(conn: Connection, prompt_ids: list[int]) -> dict[int, dict[str, int]]:
    """Prompt id -> {label: version}."""
    out: dict[int, dict[str, int]] = {pid: {} for pid in prompt_ids}
    if not prompt_ids:
        return out
    query = sa.select(prompt_labels).where(prompt_labels.c.prompt_id.in_(prompt_ids))
    for row in conn.execute(query.order_by(prompt_labels.c.name)).mappings():
        out[row["prompt_id"]][row["name"]] = row["version"]
    return out


def label_rows(conn: Connection, prompt_id: int) -> list[RowMapping]:
    query = sa.select(prompt_labels).where(prompt_labels.c.prompt_id == prompt_id)
    return list(conn.execute(query.order_by(prompt_labels.c.name)).mappings())


def get_label(conn: Connection, prompt_id: int, label: str) -> RowMapping | None:
    query = sa.select(prompt_labels).where(
        prompt_labels.c.prompt_id == prompt_id, prompt_labels.c.name == label
    )
    return conn.execute(query).mappings().first()


def move_label(
    conn: Connection,
    prompt_id: int,
    label: str,
    version: int | None,
    *,
    actor: str,
    actor_user_id: int | None = None,
    actor_key_id: int | None = None,
    reason: str = "",
) -> int | None:
    """Point ``label`` at ``version`` (None removes it) and record the move; returns the old
    version. Moving a label where it already is records nothing."""
    current = get_label(conn, prompt_id, label)
    before = current["version"] if current is not None else None
    if before == version:
        return before
    now = utcnow()
    where = (prompt_labels.c.prompt_id == prompt_id, prompt_labels.c.name == label)
    if version is None:
        conn.execute(prompt_labels.delete().where(*where))
    elif current is None:
        conn.execute(
            prompt_labels.insert().values(
                prompt_id=prompt_id, name=label, version=version, updated_by=actor, updated_at=now
            )
        )
    else:
        conn.execute(
            prompt_labels.update()
            .where(*where)
            .values(version=version, updated_by=actor, updated_at=now)
        )
    conn.execute(prompts.update().where(prompts.c.id == prompt_id).values(updated_at=now))
    conn.execute(
        prompt_label_events.insert().values(
            prompt_id=prompt_id,
            label=label,
            from_version=before,
            to_version=version,
            actor=actor,
            actor_user_id=actor_user_id,
            actor_key_id=actor_key_id,
            reason=reason,
            created_at=now,
        )
    )
    return before


def label_events(
    conn: Connection,
    prompt_id: int,
    *,
    label: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> tuple[list[RowMapping], int | None]:
    """Label moves, newest first; the event id to continue before."""
    t = prompt_label_events
    query = sa.select(t).where(t.c.prompt_id == prompt_id).order_by(t.c.id.desc()).limit(limit + 1)
    if label is not None:
        query = query.where(t.c.label == label)
    if before is not None:
        query = query.where(t.c.id < before)
    rows = list(conn.execute(query).mappings())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["id"] if more else None)


def last_move(conn: Connection, prompt_id: int, label: str) -> RowMapping | None:
    rows, _ = label_events(conn, prompt_id, label=label, limit=1)
    return rows[0] if rows else None


__all__ = [
    "prompt_label_events",
    "prompt_labels",
    "prompt_versions",
    "prompts",
]
