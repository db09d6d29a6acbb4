"""Tables and queries of the gateway: spend per project, key and day, and the response cache.

Spend rows are upserted in batches by :class:`pilothouse.gateway.spend.SpendLedger` (never one
write per request); ``INSERT ... ON CONFLICT DO UPDATE`` works on SQLite and PostgreSQL alike,
only the ``insert`` construct differs by dialect.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from pilothouse.store.metadata import metadata
from pilothouse.store.types import BigID, UTCDateTime, utcnow

#: key_id of spend that no API key made (e.g. internal calls): NULL would defeat the upsert.
NO_KEY = 0

gateway_spend = sa.Table(
    "gateway_spend",
    metadata,
    sa.Column("project_id", BigID, primary_key=True),
    sa.Column("key_id", BigID, primary_key=True),
    sa.Column("period_start", sa.Date, primary_key=True),
    sa.Column("cost_usd", sa.Float, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("requests", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index(None, "period_start"),
)

gateway_cache = sa.Table(
    "gateway_cache",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)


@dataclass
class SpendDelta:
    """Spend to add to one (project, key, day) row."""

    project_id: int
    key_id: int
    period_start: date
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0


def _insert(conn: Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def add_spend(conn: Connection, deltas: Iterable[SpendDelta]) -> int:
    """Add each delta to its row (created when missing); one statement per batch."""
    now = utcnow()
    rows = [
        {
            "project_id": d.project_id,
            "key_id": d.key_id,
            "period_start": d.period_start,
            "cost_usd": d.cost_usd,
            "input_tokens": d.input_tokens,
            "output_tokens": d.output_tokens,
            "requests": d.requests,
            "updated_at": now,
        }
        for d in deltas
    ]
    if not rows:
        return 0
    stmt = _insert(conn, gateway_spend)
    t = gateway_spend
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.project_id, t.c.key_id, t.c.period_start],
        set_={
            "cost_usd": t.c.cost_usd + stmt.excluded.cost_usd,
            "input_tokens": t.c.input_tokens + stmt.excluded.input_tokens,
            "output_tokens": t.c.output_tokens + stmt.excluded.output_tokens,
            "requests": t.c.requests + stmt.excluded.requests,
            "updated_at": stmt.excluded.updated_at,
        },
    )
    conn.execute(stmt, rows)
    return len(rows)


def spend_since(conn: Connection, start: date) -> list[SpendDelta]:
    """Every spend row from ``start`` (a day) on."""
    t = gateway_spend
    query = sa.select(t).where(t.c.period_start >= start)
    return [
        SpendDelta(
            project_id=r.project_id,
            key_id=r.key_id,
            period_start=r.period_start,
            cost_usd=r.cost_usd,
            input_tokens=r.input_tokens,
            output_tokens=r.output_tokens,
            requests=r.requests,
        )
        for r in conn.execute(query)
    ]


def project_spend(conn: Connection, project_id: int, since: date, until: date) -> list[SpendDelta]:
    """A project's spend rows from ``since`` to ``until`` (days, inclusive), oldest first."""
    t = gateway_spend
    query = (
        sa.select(t)
        .where(t.c.project_id == project_id, t.c.period_start >= since, t.c.period_start <= until)
        .order_by(t.c.period_start, t.c.key_id)
    )
    return [
        SpendDelta(
            project_id=r.project_id,
            key_id=r.key_id,
            period_start=r.period_start,
            cost_usd=r.cost_usd,
            input_tokens=r.input_tokens,
            output_tokens=r.output_tokens,
            requests=r.requests,
        )
        for r in conn.execute(query)
    ]


def cache_get(conn: Connection, key: str, now: datetime) -> bytes | None:
    t = gateway_cache
    row = conn.execute(sa.select(t.c.value).where(t.c.key == key, t.c.expires_at > now)).first()
    return None if row is None else bytes(row.value)


def cache_set(conn: Connection, key: str, value: bytes, expires_at: datetime) -> None:
    stmt = _insert(conn, gateway_cache).values(
        key=key, value=value, expires_at=expires_at, created_at=utcnow()
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[gateway_cache.c.key],
        set_={"value": stmt.excluded.value, "expires_at": stmt.excluded.expires_at},
    )
    conn.execute(stmt)


def cache_purge(conn: Connection, now: datetime) -> int:
    """Delete expired entries; returns how many."""
    result = conn.execute(gateway_cache.delete().where(gateway_cache.c.expires_at <= now))
    return int(result.rowcount or 0)


__all__ = [
    "NO_KEY",
    "SpendDelta",
    "add_spend",
    "cache_get",
    "cache_purge",
    "cache_set",
    "gateway_cache",
    "gateway_spend",
    "project_spend",
    "spend_since",
]
