"""Tables and queries for traces: raw spans, one summary row per trace, rollups, scores.

Ingestion writes three things in one transaction (see :mod:`pilothouse.tracing.writer`):

- ``spans``: every span once; the primary key (project_id, trace_id, span_id) makes a re-sent
  span a no-op, and only spans that were new update the two summaries below.
- ``traces``: one row per trace, merged at ingest (time span, counts, tokens, cost, model, user,
  session, tags, root input/output), so the trace list never scans spans.
- ``trace_rollups``: per project, dimension (``all``, ``model``, ``user``, ``tag``, ``name``) and
  minute: counts, errors, tokens, cost, a latency histogram (:data:`LATENCY_BOUNDS_MS`), the
  guardrail blocks and a time-to-first-token histogram (:data:`TTFT_BOUNDS_MS`), so aggregates
  over any period read a few rows per minute instead of raw spans.

The bulk writes of ingestion are in :mod:`pilothouse.store.trace_writes`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
#: Time-to-first-token histogram, coarser: bucket 0 holds < 1 ms, bucket i [2**(i-1), 2**i) ms.
TTFT_RATIO = 2.0
TTFT_BUCKETS = 20
TTFT_BOUNDS_MS = [TTFT_RATIO**i for i in range(TTFT_BUCKETS)]
TTFT_COLUMNS = [f"ttft_{i:02d}" for i in range(TTFT_BUCKETS)]
#: The summed (not histogram) columns of ``trace_rollups``, in the order reads return them.
ROLLUP_SUMS = (
    "count",
    "errors",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "duration_ms_sum",
    "blocked",
)
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
    # Spans whose guardrail verdict was block, and the TTFT histogram of streamed calls.
    sa.Column("blocked", sa.BigInteger, nullable=False, server_default="0"),
    *[sa.Column(n, sa.BigInteger, nullable=False, server_default="0") for n in TTFT_COLUMNS],
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
            sa.cast(sa.literal(orjson.dumps([tag]).decode()), JSONDoc)
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
    (bucket, value, *sums in :data:`ROLLUP_SUMS` order, latency histogram as a list, TTFT
    histogram as a list).

    The histograms come as one JSON array per row: the driver takes far longer to hand over 60
    columns than to pass one array (a day by minute is 1,440 rows). Whole-hour intervals read
    the hourly rows (60 times fewer); ``bucket_from`` should then be hour-aligned, or the first
    hour counts from its start.
    """
    r = trace_rollups.c
    width = 3600 if interval_s % 3600 == 0 else ROLLUP_SECONDS
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

        def column(name: str) -> sa.ColumnElement[Any]:
            return r[name]

        query = sa.select(bucket, r.value)
    else:
        bucket = r.bucket_s // interval_s * interval_s

        def column(name: str) -> sa.ColumnElement[Any]:
            # Sums typed as their columns: PostgreSQL would answer numeric (Decimal) for bigints.
            return sa.cast(sa.func.sum(r[name]), r[name].type)

        query = sa.select(bucket, r.value).group_by(bucket, r.value)
    # Both histograms in one JSON array: one value for the driver to hand over, one to parse.
    histograms = array(*(column(c) for c in (*LATENCY_COLUMNS, *TTFT_COLUMNS)))
    query = query.add_columns(*(column(c) for c in ROLLUP_SUMS), histograms)
    query = query.where(*where).order_by(bucket, r.value)
    if values:
        query = query.where(r.value.in_(list(values)))
    last = 2 + len(ROLLUP_SUMS)
    out = []
    for row in conn.execute(query):
        both = row[last]
        both = orjson.loads(both) if isinstance(both, str | bytes) else both
        out.append((*row[:last], both[:LATENCY_BUCKETS], both[LATENCY_BUCKETS:]))
    return out


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
