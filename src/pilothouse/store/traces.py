"""Tables and queries for traces: raw spans, one summary row per trace, rollups, scores.

Ingestion writes three things in one transaction (see :mod:`pilothouse.tracing.writer`):

- ``spans``: every span once; the primary key (project_id, trace_id, span_id) makes a re-sent
  span a no-op, and only spans that were new update the two summaries below.
- ``traces``: one row per trace, merged at ingest (time span, counts, tokens, cost, model, user,
  session, tags, root input/output), so the trace list never scans spans.
- ``trace_rollups``: per project, dimension (``all``, ``model``, ``user``, ``tag``, ``name``) and
  minute: counts, errors, tokens, cost and a latency histogram (:data:`LATENCY_BOUNDS_MS`), so
  aggregates over any period read a few rows per minute instead of raw spans.

The bulk writes go through the DB-API directly with JSON pre-serialized by orjson: this is the
hot path of ingestion, and the generic bind processing of SQLAlchemy costs more than SQLite.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from pilothouse.store.metadata import metadata
from pilothouse.store.types import BigID, JSONDoc, UTCDateTime

#: Width of the fine rollup buckets, in seconds; every minute is also summed per hour.
ROLLUP_SECONDS = 60
ROLLUP_WIDTHS = (60, 3600)
#: Latency histogram: bucket 0 holds < 1 ms, bucket i holds [r**(i-1), r**i) ms, the last is open.
LATENCY_RATIO = math.sqrt(2)
LATENCY_BUCKETS = 40
LATENCY_BOUNDS_MS = [LATENCY_RATIO**i for i in range(LATENCY_BUCKETS)]
LATENCY_COLUMNS = [f"lat_{i:02d}" for i in range(LATENCY_BUCKETS)]
DIMENSIONS = ("all", "model", "user", "tag", "name")

spans = sa.Table(
    "spans",
    metadata,
    sa.Column("project_id", BigID, nullable=False),
    sa.Column("trace_id", sa.String(32), nullable=False),
    sa.Column("span_id", sa.String(16), nullable=False),
    sa.Column("parent_span_id", sa.String(16), nullable=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("start_ns", sa.BigInteger, nullable=False),
    sa.Column("end_ns", sa.BigInteger, nullable=False),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("status_code", sa.String(8), nullable=False),
    sa.Column("status_message", sa.Text, nullable=True),
    sa.Column("attributes", JSONDoc, nullable=False),
    sa.Column("events", JSONDoc, nullable=False),
    sa.Column("links", JSONDoc, nullable=False),
    sa.Column("resource", JSONDoc, nullable=False),
    sa.Column("scope", JSONDoc, nullable=False),
    sa.Column("service_name", sa.Text, nullable=True),
    sa.Column("operation", sa.String(32), nullable=True),
    sa.Column("provider", sa.Text, nullable=True),
    sa.Column("request_model", sa.Text, nullable=True),
    sa.Column("response_model", sa.Text, nullable=True),
    sa.Column("input_tokens", sa.BigInteger, nullable=True),
    sa.Column("output_tokens", sa.BigInteger, nullable=True),
    sa.Column("cost_usd", sa.Float, nullable=True),
    sa.Column("input", JSONDoc, nullable=True),
    sa.Column("output", JSONDoc, nullable=True),
    sa.Column("ttft_ms", sa.Float, nullable=True),
    sa.Column("session_id", sa.Text, nullable=True),
    sa.Column("user_id", sa.Text, nullable=True),
    sa.Column("tags", JSONDoc, nullable=False),
    sa.Column("prompt_name", sa.Text, nullable=True),
    sa.Column("prompt_version", sa.Integer, nullable=True),
    sa.Column("environment", sa.Text, nullable=True),
    sa.Column("release", sa.Text, nullable=True),
    sa.PrimaryKeyConstraint("project_id", "trace_id", "span_id"),
)

traces = sa.Table(
    "traces",
    metadata,
    sa.Column("project_id", BigID, nullable=False),
    sa.Column("trace_id", sa.String(32), nullable=False),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("has_root", sa.Boolean, nullable=False),
    sa.Column("start_ns", sa.BigInteger, nullable=False),
    sa.Column("end_ns", sa.BigInteger, nullable=False),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("span_count", sa.Integer, nullable=False),
    sa.Column("error_count", sa.Integer, nullable=False),
    sa.Column("service_name", sa.Text, nullable=True),
    sa.Column("model", sa.Text, nullable=True),
    sa.Column("provider", sa.Text, nullable=True),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    sa.Column("session_id", sa.Text, nullable=True),
    sa.Column("user_id", sa.Text, nullable=True),
    sa.Column("tags", JSONDoc, nullable=False),
    sa.Column("environment", sa.Text, nullable=True),
    sa.Column("release", sa.Text, nullable=True),
    sa.Column("prompt_name", sa.Text, nullable=True),
    sa.Column("prompt_version", sa.Integer, nullable=True),
    sa.Column("input", sa.Text, nullable=True),
    sa.Column("output", sa.Text, nullable=True),
    # Start of the span the model comes from: the earliest-starting span with a model wins.
    sa.Column("model_start_ns", sa.BigInteger, nullable=True),
    sa.PrimaryKeyConstraint("project_id", "trace_id"),
    sa.Index("ix_traces_project_id_start_ns", "project_id", "start_ns"),
    sa.Index("ix_traces_project_id_model_start_ns", "project_id", "model", "start_ns"),
    sa.Index("ix_traces_project_id_user_id_start_ns", "project_id", "user_id", "start_ns"),
    sa.Index("ix_traces_project_id_session_id_start_ns", "project_id", "session_id", "start_ns"),
)

trace_rollups = sa.Table(
    "trace_rollups",
    metadata,
    sa.Column("project_id", BigID, nullable=False),
    sa.Column("dimension", sa.String(16), nullable=False),
    sa.Column("width_s", sa.Integer, nullable=False),
    sa.Column("bucket_s", sa.BigInteger, nullable=False),
    sa.Column("value", sa.String(500), nullable=False),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("errors", sa.BigInteger, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    sa.Column("duration_ms_sum", sa.Float, nullable=False),
    *[sa.Column(name, sa.BigInteger, nullable=False) for name in LATENCY_COLUMNS],
    sa.PrimaryKeyConstraint("project_id", "dimension", "width_s", "bucket_s", "value"),
    # Clustered by the key on SQLite, so a period of one dimension is one sequential read.
    sqlite_with_rowid=False,
)

scores = sa.Table(
    "scores",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column("project_id", BigID, nullable=False),
    sa.Column("trace_id", sa.String(32), nullable=False),
    sa.Column("span_id", sa.String(16), nullable=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("data_type", sa.String(16), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("string_value", sa.Text, nullable=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("comment", sa.Text, nullable=True),
    sa.Column("author", sa.Text, nullable=True),
    sa.Column("metadata", JSONDoc, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_scores_project_id_trace_id", "project_id", "trace_id"),
    sa.Index("ix_scores_project_id_name_value", "project_id", "name", "value"),
)

SPAN_COLUMNS = [c.name for c in spans.columns]
TRACE_COLUMNS = [c.name for c in traces.columns]
ROLLUP_COLUMNS = [c.name for c in trace_rollups.columns]
_SPAN_JSON_INDEXES = [
    SPAN_COLUMNS.index(c)
    for c in ("attributes", "events", "links", "resource", "scope", "input", "output", "tags")
]


def _null(value: None) -> None:
    return value


# pysqlite binds None through its adapter lookup (a key tuple, a registry miss and two
# attribute lookups per NULL): an adapter for None halves that, and span rows bind many NULLs.
sqlite3.register_adapter(type(None), _null)


def _dumps(value: Any) -> str:
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


_EMPTY_JSON = {"[]": "[]", "{}": "{}"}


def span_params(rows: Iterable[Sequence[Any]], dialect: str) -> list[tuple[Any, ...]]:
    """Span rows (values in :data:`SPAN_COLUMNS` order) with their JSON columns encoded.

    Done before the write transaction: it is most of the cost of storing a span.
    """
    pg = dialect == "postgresql"
    params = []
    # Spans of one request share their resource and scope objects: serialize those once.
    shared: dict[int, str] = {}
    for row in rows:
        values = list(row)
        for i in _SPAN_JSON_INDEXES:
            value = values[i]
            if value is None:
                continue
            if not value and (isinstance(value, list | dict)):
                values[i] = "[]" if isinstance(value, list) else "{}"
                continue
            text = shared.get(id(value))
            if text is None:
                text = shared[id(value)] = _dumps(value)
            values[i] = text
        params.append(tuple(_pg_text(v) for v in values) if pg else tuple(values))
    return params


def insert_spans(conn: Connection, rows: Sequence[Sequence[Any]]) -> int:
    """Insert span rows (values in :data:`SPAN_COLUMNS` order), skipping stored ones; returns
    how many were new."""
    return insert_span_params(conn, span_params(rows, conn.dialect.name))


def insert_span_params(conn: Connection, params: Sequence[Sequence[Any]]) -> int:
    """:func:`insert_spans` of rows already encoded by :func:`span_params`."""
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


def upsert_traces(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Merge one summary row per trace into ``traces`` (created when new)."""
    if not rows:
        return
    pg = conn.dialect.name == "postgresql"
    least, greatest = _least(conn)
    params = []
    for row in rows:
        values = [_dumps(row[name]) if name == "tags" else row.get(name) for name in TRACE_COLUMNS]
        params.append(tuple(_pg_text(v) for v in values) if pg else tuple(values))
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
    summed = ["count", "errors", "input_tokens", "output_tokens", "cost_usd", "duration_ms_sum"]
    sets = [f"{c} = trace_rollups.{c} + excluded.{c}" for c in summed + LATENCY_COLUMNS]
    conflict = "ON CONFLICT (project_id, dimension, width_s, bucket_s, value) DO UPDATE SET "
    _insert(conn, trace_rollups, rows, conflict + ", ".join(sets))


def count_spans(conn: Connection, project_id: int | None = None) -> int:
    query = sa.select(sa.func.count()).select_from(spans)
    if project_id is not None:
        query = query.where(spans.c.project_id == project_id)
    return int(conn.execute(query).scalar_one())


# --- reads ----------------------------------------------------------------------------------


@dataclass
class TraceFilter:
    """Filters of the trace list; every field is optional."""

    start_ns_from: int | None = None
    start_ns_to: int | None = None
    name: str | None = None
    model: str | None = None
    provider: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    tags: Sequence[str] = ()
    status: str | None = None  # "error" or "ok"
    min_latency_ms: float | None = None
    max_latency_ms: float | None = None
    min_cost_usd: float | None = None
    max_cost_usd: float | None = None
    min_tokens: int | None = None
    max_tokens: int | None = None
    score_name: str | None = None
    score_min: float | None = None
    score_max: float | None = None
    score_value: str | None = None
    text: str | None = None
    environment: str | None = None
    release: str | None = None


def _has_tag(conn: Connection, tag: str) -> sa.ColumnElement[bool]:
    if conn.dialect.name == "postgresql":
        contains: sa.ColumnElement[bool] = traces.c.tags.op("@>")(
            sa.cast(sa.literal(_dumps([tag])), JSONDoc)
        )
        return contains
    each = sa.func.json_each(traces.c.tags).table_valued("value")
    return sa.exists(sa.select(sa.literal(1)).select_from(each).where(each.c.value == tag))


def _contains(conn: Connection, column: sa.ColumnElement[Any], text: str) -> Any:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    if conn.dialect.name == "postgresql":
        return column.ilike(pattern, escape="\\")
    return column.like(pattern, escape="\\")


def trace_conditions(
    conn: Connection, project_id: int, f: TraceFilter
) -> list[sa.ColumnElement[bool]]:
    t = traces.c
    where: list[sa.ColumnElement[bool]] = [t.project_id == project_id]
    equal = {
        "name": f.name,
        "model": f.model,
        "provider": f.provider,
        "user_id": f.user_id,
        "session_id": f.session_id,
        "environment": f.environment,
        "release": f.release,
    }
    for column, value in equal.items():
        if value is not None:
            where.append(t[column] == value)
    if f.start_ns_from is not None:
        where.append(t.start_ns >= f.start_ns_from)
    if f.start_ns_to is not None:
        where.append(t.start_ns < f.start_ns_to)
    for tag in f.tags:
        where.append(_has_tag(conn, tag))
    if f.status == "error":
        where.append(t.error_count > 0)
    elif f.status == "ok":
        where.append(t.error_count == 0)
    bounds: list[tuple[sa.ColumnElement[Any], float | None, float | None]] = [
        (t.duration_ms, f.min_latency_ms, f.max_latency_ms),
        (t.cost_usd, f.min_cost_usd, f.max_cost_usd),
        (t.input_tokens + t.output_tokens, f.min_tokens, f.max_tokens),
    ]
    for expr, low, high in bounds:
        if low is not None:
            where.append(expr >= low)
        if high is not None:
            where.append(expr <= high)
    if f.score_name is not None:
        s = scores.c
        match = [s.project_id == t.project_id, s.trace_id == t.trace_id, s.name == f.score_name]
        if f.score_min is not None:
            match.append(s.value >= f.score_min)
        if f.score_max is not None:
            match.append(s.value <= f.score_max)
        if f.score_value is not None:
            match.append(s.string_value == f.score_value)
        where.append(sa.exists(sa.select(sa.literal(1)).where(*match)))
    if f.text:
        where.append(sa.or_(_contains(conn, t.input, f.text), _contains(conn, t.output, f.text)))
    return where


SORTS = {
    "start_time": traces.c.start_ns,
    "latency": traces.c.duration_ms,
    "cost": traces.c.cost_usd,
    "tokens": traces.c.input_tokens + traces.c.output_tokens,
}


def list_traces(
    conn: Connection,
    project_id: int,
    f: TraceFilter,
    *,
    sort: str = "start_time",
    descending: bool = True,
    after: tuple[Any, str] | None = None,
    limit: int = 50,
) -> list[RowMapping]:
    """One page of traces; ``after`` is (sort value, trace_id) of the previous page's last row."""
    key = SORTS[sort]
    query = sa.select(traces).where(*trace_conditions(conn, project_id, f)).limit(limit)
    if descending:
        query = query.order_by(key.desc(), traces.c.trace_id.desc())
    else:
        query = query.order_by(key.asc(), traces.c.trace_id.asc())
    if after is not None:
        # A row-value comparison, which both planners turn into one index range scan (an OR
        # of two comparisons is not, on PostgreSQL).
        position = sa.tuple_(key, traces.c.trace_id)
        bound = sa.tuple_(sa.literal(after[0], key.type), sa.literal(after[1], sa.String()))
        query = query.where(position < bound if descending else position > bound)
    return list(conn.execute(query).mappings())


def get_trace(conn: Connection, project_id: int, trace_id: str) -> RowMapping | None:
    query = sa.select(traces).where(
        traces.c.project_id == project_id, traces.c.trace_id == trace_id
    )
    return conn.execute(query).mappings().first()


def spans_of(conn: Connection, project_id: int, trace_id: str) -> list[RowMapping]:
    query = (
        sa.select(spans)
        .where(spans.c.project_id == project_id, spans.c.trace_id == trace_id)
        .order_by(spans.c.start_ns, spans.c.span_id)
    )
    return list(conn.execute(query).mappings())


def session_traces(
    conn: Connection, project_id: int, session_id: str, limit: int = 1000
) -> list[RowMapping]:
    query = (
        sa.select(traces)
        .where(traces.c.project_id == project_id, traces.c.session_id == session_id)
        .order_by(traces.c.start_ns, traces.c.trace_id)
        .limit(limit)
    )
    return list(conn.execute(query).mappings())


def scores_of(conn: Connection, project_id: int, trace_ids: Sequence[str]) -> list[RowMapping]:
    if not trace_ids:
        return []
    query = (
        sa.select(scores)
        .where(scores.c.project_id == project_id, scores.c.trace_id.in_(list(trace_ids)))
        .order_by(scores.c.id)
    )
    return list(conn.execute(query).mappings())


def insert_score(conn: Connection, **values: Any) -> RowMapping:
    result = conn.execute(scores.insert().values(**values))
    assert result.inserted_primary_key is not None
    query = sa.select(scores).where(scores.c.id == result.inserted_primary_key[0])
    return conn.execute(query).mappings().one()


def rollup_series(
    conn: Connection,
    project_id: int,
    dimension: str,
    bucket_from: int,
    bucket_to: int,
    interval_s: int,
    values: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """Rollups summed per (interval start, value) for one dimension and period, as tuples:
    (bucket, value, count, errors, input_tokens, output_tokens, cost_usd, duration_ms_sum,
    latency histogram as a list).

    The histogram comes as one JSON array per row: the driver takes far longer to hand over 40
    columns than to pass one array (a day by minute is 1,440 rows). Whole-hour intervals read
    the hourly rows (60 times fewer); ``bucket_from`` should then be hour-aligned, or the first
    hour counts from its start.
    """
    r = trace_rollups.c
    width = 3600 if interval_s % 3600 == 0 else ROLLUP_SECONDS
    summed = ["count", "errors", "input_tokens", "output_tokens", "cost_usd", "duration_ms_sum"]
    where = (
        r.project_id == project_id,
        r.dimension == dimension,
        r.width_s == width,
        r.bucket_s >= bucket_from // width * width,
        r.bucket_s < bucket_to,
    )
    array = sa.func.json_build_array if conn.dialect.name == "postgresql" else sa.func.json_array
    if interval_s == width:  # the stored rows are the answer: read them in key order
        bucket: sa.ColumnElement[Any] = r.bucket_s
        sums: list[sa.ColumnElement[Any]] = [r[c] for c in summed]
        histogram = array(*(r[c] for c in LATENCY_COLUMNS))
        query = sa.select(bucket, r.value, *sums, histogram).where(*where)
    else:
        bucket = r.bucket_s // interval_s * interval_s
        # Sums typed as their columns: PostgreSQL would answer numeric (Decimal) for bigints.
        sums = [sa.cast(sa.func.sum(r[c]), r[c].type) for c in summed]
        histogram = array(*(sa.cast(sa.func.sum(r[c]), r[c].type) for c in LATENCY_COLUMNS))
        query = sa.select(bucket, r.value, *sums, histogram).where(*where).group_by(bucket, r.value)
    query = query.order_by(bucket, r.value)
    if values:
        query = query.where(r.value.in_(list(values)))
    out = []
    for row in conn.execute(query):
        lat = row[8]
        out.append((*row[:8], orjson.loads(lat) if isinstance(lat, str | bytes) else lat))
    return out


def rollup_rows(
    conn: Connection,
    project_id: int,
    dimension: str,
    bucket_from: int,
    bucket_to: int,
    interval_s: int,
    values: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """:func:`rollup_series` with the histogram flattened into the tuple: (bucket, value,
    count, errors, input_tokens, output_tokens, cost_usd, duration_ms_sum, *histogram)."""
    series = rollup_series(conn, project_id, dimension, bucket_from, bucket_to, interval_s, values)
    return [(*row[:8], *row[8]) for row in series]


# --- retention ------------------------------------------------------------------------------


def delete_traces_before(conn: Connection, project_id: int, before_ns: int) -> int:
    """Delete traces that started before ``before_ns`` with their spans, scores and rollups."""
    old = sa.select(traces.c.trace_id).where(
        traces.c.project_id == project_id, traces.c.start_ns < before_ns
    )
    conn.execute(
        scores.delete().where(scores.c.project_id == project_id, scores.c.trace_id.in_(old))
    )
    conn.execute(spans.delete().where(spans.c.project_id == project_id, spans.c.trace_id.in_(old)))
    deleted = conn.execute(
        traces.delete().where(traces.c.project_id == project_id, traces.c.start_ns < before_ns)
    ).rowcount
    conn.execute(
        trace_rollups.delete().where(
            trace_rollups.c.project_id == project_id,
            trace_rollups.c.bucket_s + trace_rollups.c.width_s <= before_ns // 1_000_000_000,
        )
    )
    return int(deleted or 0)
