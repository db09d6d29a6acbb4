"""The ingestion hot path of the trace tables: bulk inserts and upserts through the driver.

Rows arrive with their JSON already encoded by orjson (:func:`span_params`, before the write
transaction) and go through the DB-API directly: SQLAlchemy's generic bind processing costs
more than SQLite itself here. SQLite uses ``executemany``; PostgreSQL ``COPY`` into a temporary
table and one ``INSERT ... SELECT ... ON CONFLICT`` per table and batch.
"""

from __future__ import annotations

import operator
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pilothouse.store.traces import (
    LATENCY_COLUMNS,
    ROLLUP_SUMS,
    TRACE_COLUMNS,
    TTFT_COLUMNS,
    spans,
    trace_rollups,
    traces,
)

# pysqlite binds None through its adapter lookup (a key tuple, a registry miss and two
# attribute lookups per NULL): an adapter for None halves that, and span rows bind many NULLs.
# The adapter is a C function returning None for None (an empty dict's ``get``): a Python
# function would cost a frame per NULL.
_NONE: dict[None, None] = {}
sqlite3.register_adapter(type(None), _NONE.get)


def json_text(value: Any) -> str:
    """``value`` as the JSON text a JSON column stores."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


def _pg_text(value: Any) -> Any:
    # PostgreSQL text and jsonb refuse NUL characters, which SQLite and OTLP allow.
    if isinstance(value, str):
        return value.replace("\\u0000", "").replace("\x00", "")
    return value


def _placeholders(conn: Connection, n: int) -> str:
    mark = "?" if conn.dialect.name == "sqlite" else "%s"
    return ", ".join([mark] * n)


def _least(conn: Connection) -> tuple[str, str]:
    return ("min", "max") if conn.dialect.name == "sqlite" else ("LEAST", "GREATEST")


# --- writes (the ingestion hot path) --------------------------------------------------------


def set_autocheckpoint(conn: Connection, on: bool) -> None:
    """SQLite: turn the connection's automatic WAL checkpoint (in its commits) off or back on
    (SQLite's default threshold, 1,000 pages)."""
    _driver_execute(conn, f"PRAGMA wal_autocheckpoint={1000 if on else 0}")


def sync_wal(conn: Connection) -> None:
    """SQLite: flush the database's WAL to disk (``fdatasync``), what a commit does with
    ``synchronous=FULL``, but outside the write transaction (and the writers' lock).

    It makes every transaction committed so far survive a power loss: their frames are in the
    WAL, or a checkpoint already copied them into the database file and synced it (SQLite
    writes over WAL frames only after that). ``conn`` is open, so the WAL file is the one its
    path names (SQLite deletes it only when the last connection closes)."""
    database = conn.engine.url.database
    if not database or database == ":memory:":
        return
    try:
        fd = os.open(f"{database}-wal", os.O_RDONLY)
    except FileNotFoundError:  # not in WAL mode: its commits synced the database themselves
        return
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def checkpoint(conn: Connection) -> tuple[int, int]:
    """SQLite: copy what the WAL holds into the database file without waiting for readers
    (``PASSIVE``); returns the frames in the WAL and how many of them are in the database
    now (none when another connection was checkpointing). ``conn`` must not be in a
    transaction."""
    sql = "PRAGMA wal_checkpoint(PASSIVE)"
    driver = conn.connection.driver_connection
    assert driver is not None
    with _driver_errors(conn, sql):
        cursor = driver.execute(sql)
        try:
            _busy, frames, copied = cursor.fetchall()[0]
        finally:
            cursor.close()  # a statement left open would keep a read lock on the WAL
    return int(frames), int(copied)


def _driver_execute(conn: Connection, sql: str) -> None:
    # Through the driver: SQLAlchemy would begin a transaction first.
    driver = conn.connection.driver_connection
    assert driver is not None
    driver.execute(sql).close()


def existing_span_keys(
    conn: Connection, project_trace_ids: Iterable[tuple[int, str]]
) -> set[tuple[int, str, str]]:
    """(project_id, trace_id, span_id) already stored for these traces."""
    by_project: dict[int, list[str]] = {}
    for project_id, trace_id in project_trace_ids:
        by_project.setdefault(project_id, []).append(trace_id)
    found: set[tuple[int, str, str]] = set()
    for project_id, trace_ids in by_project.items():
        for i in range(0, len(trace_ids), 500):
            chunk = trace_ids[i : i + 500]
            query = sa.select(spans.c.trace_id, spans.c.span_id).where(
                spans.c.project_id == project_id, spans.c.trace_id.in_(chunk)
            )
            found.update((project_id, t, s) for t, s in conn.execute(query))
    return found


def span_params(rows: list[tuple[Any, ...]], dialect: str) -> list[tuple[Any, ...]]:
    """Span rows (values in :data:`SPAN_COLUMNS` order, JSON columns already encoded by
    :func:`json_text`) as the driver binds them: unchanged on SQLite; PostgreSQL's text and
    ``jsonb`` refuse NUL characters, which are removed."""
    if dialect != "postgresql":
        return rows
    return [tuple(_pg_text(v) for v in row) for row in rows]


def insert_span_params(conn: Connection, params: Sequence[Sequence[Any]]) -> int:
    """Insert span rows encoded by :func:`span_params`, skipping stored ones; returns how many
    were new."""
    return _insert(conn, spans, params, "ON CONFLICT (project_id, trace_id, span_id) DO NOTHING")


def _insert(
    conn: Connection, table: sa.Table, rows: Sequence[Sequence[Any]], on_conflict: str
) -> int:
    """``INSERT INTO table ... on_conflict`` of rows in column order, through the driver;
    returns how many rows were inserted or updated.

    SQLite: ``executemany``. PostgreSQL: ``COPY`` into a temporary table, then one
    ``INSERT ... SELECT`` (one statement for the batch instead of one per row).
    """
    if not rows:
        return 0
    columns = ", ".join(c.name for c in table.columns)
    driver = conn.connection.driver_connection
    assert driver is not None
    if conn.dialect.name != "postgresql":
        sql = (
            f"INSERT INTO {table.name} ({columns}) "
            f"VALUES ({_placeholders(conn, len(table.columns))}) {on_conflict}"
        )
        with _driver_errors(conn, sql):
            cursor = driver.cursor()
            try:
                cursor.executemany(sql, rows)
                return int(cursor.rowcount)
            finally:
                cursor.close()
    incoming = f"{table.name}_incoming"
    sql = f"INSERT INTO {table.name} ({columns}) SELECT {columns} FROM {incoming} {on_conflict}"
    with _driver_errors(conn, sql), driver.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {incoming} "
            f"(LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cursor.copy(f"COPY {incoming} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(sql)
        inserted = int(cursor.rowcount)
        cursor.execute(f"DELETE FROM {incoming}")  # for another batch in this transaction
        return inserted


@contextmanager
def _driver_errors(conn: Connection, statement: str) -> Iterator[None]:
    """Driver exceptions as SQLAlchemy's (IntegrityError, OperationalError...), as if the
    statement had gone through SQLAlchemy (the writer tells bad data from a failing database
    by those)."""
    error = conn.dialect.loaded_dbapi.Error
    try:
        yield
    except error as exc:
        raise sa.exc.DBAPIError.instance(statement, None, exc, error) from exc


#: A trace summary (a dict with every :data:`TRACE_COLUMNS` key) as a tuple in column order.
_trace_values = operator.itemgetter(*TRACE_COLUMNS)
_TAGS = TRACE_COLUMNS.index("tags")


def upsert_traces(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Merge one summary row per trace into ``traces`` (created when new)."""
    if not rows:
        return
    pg = conn.dialect.name == "postgresql"
    least, greatest = _least(conn)
    params = []
    for row in rows:
        values = _trace_values(row)
        values = (*values[:_TAGS], json_text(values[_TAGS]), *values[_TAGS + 1 :])
        params.append(tuple(_pg_text(v) for v in values) if pg else values)
    root = "excluded.has_root AND NOT traces.has_root"
    new_start = f"{least}(traces.start_ns, excluded.start_ns)"
    new_end = f"{greatest}(traces.end_ns, excluded.end_ns)"
    # The earliest-starting span with a model gives the model, its provider and start.
    earlier_model = (
        "excluded.model IS NOT NULL AND (traces.model IS NULL"
        " OR excluded.model_start_ns < traces.model_start_ns)"
    )
    if pg:
        union_tags = (
            "traces.tags || coalesce((SELECT jsonb_agg(t.value ORDER BY t.n)"
            " FROM jsonb_array_elements(excluded.tags) WITH ORDINALITY AS t(value, n)"
            " WHERE NOT traces.tags @> jsonb_build_array(t.value)), '[]'::jsonb)"
        )
    else:
        union_tags = (
            "(SELECT json_group_array(value) FROM (SELECT value FROM json_each(traces.tags)"
            " UNION ALL SELECT value FROM json_each(excluded.tags) WHERE value NOT IN"
            " (SELECT value FROM json_each(traces.tags))))"
        )
    first = ("environment", "release", "prompt_name", "prompt_version")
    sets = [
        f"name = CASE WHEN {root} THEN excluded.name ELSE coalesce(traces.name, excluded.name) END",
        f"input = CASE WHEN {root} THEN coalesce(excluded.input, traces.input)"
        " ELSE coalesce(traces.input, excluded.input) END",
        f"output = CASE WHEN {root} THEN coalesce(excluded.output, traces.output)"
        " ELSE coalesce(traces.output, excluded.output) END",
        f"service_name = CASE WHEN {root} THEN coalesce(excluded.service_name, "
        "traces.service_name) ELSE coalesce(traces.service_name, excluded.service_name) END",
        f"session_id = CASE WHEN {root} THEN coalesce(excluded.session_id, traces.session_id)"
        " ELSE coalesce(traces.session_id, excluded.session_id) END",
        f"user_id = CASE WHEN {root} THEN coalesce(excluded.user_id, traces.user_id)"
        " ELSE coalesce(traces.user_id, excluded.user_id) END",
        "has_root = traces.has_root OR excluded.has_root",
        f"start_ns = {new_start}",
        f"end_ns = {new_end}",
        f"duration_ms = ({new_end} - {new_start}) / 1000000.0",
        *(
            f"{c} = traces.{c} + excluded.{c}"
            for c in ("span_count", "error_count", "input_tokens", "output_tokens", "cost_usd")
        ),
        *(
            f"{c} = CASE WHEN {earlier_model} THEN excluded.{c} ELSE traces.{c} END"
            for c in ("model", "provider", "model_start_ns")
        ),
        *(f"{c} = coalesce(traces.{c}, excluded.{c})" for c in first),
        # Tags are the union, in the order they were first seen.
        f"tags = CASE WHEN excluded.tags = {_empty_tags(pg)} THEN traces.tags"
        f" ELSE {union_tags} END",
    ]
    _insert(
        conn, traces, params, f"ON CONFLICT (project_id, trace_id) DO UPDATE SET {', '.join(sets)}"
    )


def _empty_tags(pg: bool) -> str:
    return "'[]'::jsonb" if pg else "'[]'"


def upsert_rollups(conn: Connection, rows: Sequence[Sequence[Any]]) -> None:
    """Add rollup increments: rows in :data:`ROLLUP_COLUMNS` order, one per project,
    dimension, width, bucket and value."""
    if not rows:
        return
    summed = [*ROLLUP_SUMS, *LATENCY_COLUMNS, *TTFT_COLUMNS]
    sets = [f"{c} = trace_rollups.{c} + excluded.{c}" for c in summed]
    conflict = "ON CONFLICT (project_id, dimension, width_s, bucket_s, value) DO UPDATE SET "
    _insert(conn, trace_rollups, rows, conflict + ", ".join(sets))
