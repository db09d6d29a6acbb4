"""Tables and queries of human review: annotation queues, their items and annotations.

A queue has a rubric (``score_configs``) and asks ``reviewers_per_item`` reviewers for each
item (a trace or a dataset item). A reviewer claims the next item they have not annotated and
nobody else holds (a claim lapses after :data:`CLAIM_MINUTES`); one annotation per reviewer
and item.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from pilothouse.errors import Conflict, NotFound
from pilothouse.store.metadata import metadata
from pilothouse.store.types import BigID, JSONDoc, UTCDateTime, utcnow

CLAIM_MINUTES = 30

annotation_queues = sa.Table(
    "annotation_queues",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column(
        "project_id", BigID, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("score_configs", JSONDoc, nullable=False),
    sa.Column("reviewers_per_item", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("project_id", "name"),
)

annotation_items = sa.Table(
    "annotation_items",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column(
        "queue_id",
        BigID,
        sa.ForeignKey("annotation_queues.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("trace_id", sa.String(32), nullable=True),
    sa.Column(
        "dataset_item_id",
        BigID,
        sa.ForeignKey("dataset_items.id", ondelete="CASCADE"),
        nullable=True,
    ),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("claimed_by", sa.String(320), nullable=True),
    sa.Column("claimed_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

item_annotations = sa.Table(
    "annotations",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column(
        "item_id",
        BigID,
        sa.ForeignKey("annotation_items.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("reviewer", sa.String(320), nullable=False),
    sa.Column("scores", JSONDoc, nullable=False),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("item_id", "reviewer"),
)


def create_queue(conn: Connection, **values: Any) -> RowMapping:
    q = annotation_queues.c
    exists = conn.execute(
        sa.select(q.id).where(q.project_id == values["project_id"], q.name == values["name"])
    ).first()
    if exists is not None:
        raise Conflict(f"annotation queue {values['name']!r} already exists", param="name")
    values["created_at"] = utcnow()
    result = conn.execute(annotation_queues.insert().values(**values))
    assert result.inserted_primary_key is not None
    return get_queue(conn, result.inserted_primary_key[0])


def get_queue(conn: Connection, queue_id: int) -> RowMapping:
    query = sa.select(annotation_queues).where(annotation_queues.c.id == queue_id)
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"annotation queue {queue_id} not found")
    return row


def list_queues(conn: Connection, project_id: int) -> list[RowMapping]:
    q = annotation_queues.c
    query = sa.select(annotation_queues).where(q.project_id == project_id).order_by(q.name)
    return list(conn.execute(query).mappings())


def add_items(conn: Connection, queue_id: int, rows: list[dict[str, Any]]) -> int:
    """Queue traces and dataset items (``trace_id`` or ``dataset_item_id`` each); what the
    queue already holds is skipped. Returns how many were added."""
    i = annotation_items.c
    held = conn.execute(
        sa.select(i.trace_id, i.dataset_item_id).where(i.queue_id == queue_id)
    ).all()
    seen = {(r.trace_id, r.dataset_item_id) for r in held}
    new = []
    for row in rows:
        key = (row["trace_id"], row["dataset_item_id"])
        if key not in seen:
            seen.add(key)
            new.append(row)
    if new:
        now = utcnow()
        conn.execute(
            annotation_items.insert(),
            [{"queue_id": queue_id, "status": "pending", "created_at": now, **r} for r in new],
        )
    return len(new)


def get_item(conn: Connection, queue_id: int, item_id: int) -> RowMapping:
    i = annotation_items.c
    query = sa.select(annotation_items).where(i.id == item_id, i.queue_id == queue_id)
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"item {item_id} not found in annotation queue {queue_id}")
    return row


def claim_next(conn: Connection, queue: Any, reviewer: str) -> RowMapping | None:
    """The item this reviewer holds or the next one open to them, now claimed by them."""
    i, a = annotation_items.c, item_annotations.c
    mine = sa.exists(sa.select(a.id).where(a.item_id == i.id, a.reviewer == reviewer))
    lapsed = utcnow() - timedelta(minutes=CLAIM_MINUTES)
    query = (
        sa.select(annotation_items)
        .where(
            i.queue_id == queue["id"],
            i.status != "done",
            ~mine,
            sa.or_(i.claimed_by.is_(None), i.claimed_by == reviewer, i.claimed_at < lapsed),
        )
        .order_by(sa.case((i.claimed_by == reviewer, 0), else_=1), i.id)
        .limit(1)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=annotation_items)
    row = conn.execute(query).mappings().first()
    if row is None:
        return None
    conn.execute(
        annotation_items.update()
        .where(i.id == row["id"])
        .values(claimed_by=reviewer, claimed_at=utcnow())
    )
    return get_item(conn, queue["id"], row["id"])


def annotate(
    conn: Connection,
    queue: Any,
    item: Any,
    reviewer: str,
    scores: dict[str, Any],
    comment: str | None,
) -> RowMapping:
    a, i = item_annotations.c, annotation_items.c
    done = conn.execute(
        sa.select(a.id).where(a.item_id == item["id"], a.reviewer == reviewer)
    ).first()
    if done is not None:
        raise Conflict(f"{reviewer} already annotated item {item['id']}")
    conn.execute(
        item_annotations.insert().values(
            item_id=item["id"], reviewer=reviewer, scores=scores, comment=comment,
            created_at=utcnow(),
        )
    )  # fmt: skip
    count = conn.execute(
        sa.select(sa.func.count()).select_from(item_annotations).where(a.item_id == item["id"])
    ).scalar_one()
    status = "done" if count >= queue["reviewers_per_item"] else "pending"
    conn.execute(
        annotation_items.update()
        .where(i.id == item["id"])
        .values(status=status, claimed_by=None, claimed_at=None)
    )
    row = (
        conn.execute(
            sa.select(item_annotations).where(a.item_id == item["id"], a.reviewer == reviewer)
        )
        .mappings()
        .one()
    )
    return row


def annotations_of(conn: Connection, queue_id: int) -> list[RowMapping]:
    """Every annotation of the queue, by item then time."""
    a, i = item_annotations.c, annotation_items.c
    query = (
        sa.select(item_annotations)
        .join(annotation_items, i.id == a.item_id)
        .where(i.queue_id == queue_id)
        .order_by(a.item_id, a.id)
    )
    return list(conn.execute(query).mappings())


def counts(conn: Connection, queue_id: int) -> dict[str, int]:
    i = annotation_items.c
    query = sa.select(i.status, sa.func.count()).where(i.queue_id == queue_id).group_by(i.status)
    return {status: n for status, n in conn.execute(query)}


def annotation_by(conn: Connection, item_id: int, reviewer: str) -> RowMapping | None:
    """The reviewer's annotation of one item, if they made one."""
    a = item_annotations.c
    query = sa.select(item_annotations).where(a.item_id == item_id, a.reviewer == reviewer)
    return conn.execute(query).mappings().first()
