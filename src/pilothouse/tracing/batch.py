"""Storing one batch of normalized spans: a single transaction, prepared before it starts.

Everything but the SQL is computed first (span rows with their JSON encoded, trace summaries,
rollups), assuming every span is new, so the database's write lock is held only for the
inserts. When the insert finds spans already stored (a retrying exporter re-sends them), the
transaction returns to before it and stores only the new spans, so the summaries and rollups
count every span once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from pilothouse.store import Database
from pilothouse.store import trace_writes as store
from pilothouse.tracing import summary
from pilothouse.tracing.model import Span
from pilothouse.tracing.writelock import WriteLock


def span_row(span: Span) -> tuple[Any, ...]:
    """The ``spans`` row of a normalized span, in :data:`store.SPAN_COLUMNS` order."""
    s = span
    return (
        s.project_id,
        s.trace_id,
        s.span_id,
        s.parent_span_id,
        s.name,
        s.kind,
        s.start_time_ns,
        s.end_time_ns,
        (s.end_time_ns - s.start_time_ns) / 1e6,
        s.status_code,
        s.status_message,
        s.attributes,
        s.events,
        s.links,
        s.resource,
        s.scope,
        s.service_name,
        s.operation,
        s.provider,
        s.request_model,
        s.response_model,
        s.input_tokens,
        s.output_tokens,
        s.cost_usd,
        s.input,
        s.output,
        s.ttft_ms,
        s.session_id,
        s.user_id,
        s.tags,
        s.prompt_name,
        s.prompt_version,
        s.environment,
        s.release,
    )


class Batch:
    """What storing these spans writes: encoded span rows, trace summaries, rollups."""

    def __init__(self, spans: Sequence[Span], dialect: str) -> None:
        groups = summary.group_by_trace(spans)
        self.params = store.span_params(map(span_row, spans), dialect)
        self.traces = [summary.trace_row(p, t, group) for (p, t), group in groups.items()]
        self.rollups = summary.rollup_rows(groups)


class SpanStore:
    """Writes batches of normalized spans to one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = WriteLock(db)  # one writing process at a time on SQLite

    def write(self, spans: Sequence[Span]) -> int:
        """Store ``spans`` (normalized) in one transaction; returns how many were new."""
        if not spans:
            return 0
        batch = Batch(spans, self.db.dialect)
        with self._lock.hold(), self.db.write() as conn:
            savepoint = conn.begin_nested()
            if store.insert_span_params(conn, batch.params) == len(spans):
                savepoint.commit()
            else:
                savepoint.rollback()
                batch = Batch(_new_spans(conn, spans), self.db.dialect)
                store.insert_span_params(conn, batch.params)
            store.upsert_traces(conn, batch.traces)
            store.upsert_rollups(conn, batch.rollups)
        return len(batch.params)

    def close(self) -> None:
        self._lock.close()


def _new_spans(conn: Connection, spans: Sequence[Span]) -> list[Span]:
    """``spans`` not stored yet, each once."""
    stored = store.existing_span_keys(conn, {(s.project_id, s.trace_id) for s in spans})
    new: list[Span] = []
    for span in spans:
        key = (span.project_id, span.trace_id, span.span_id)
        if key not in stored:
            stored.add(key)
            new.append(span)
    return new


__all__ = ["Batch", "SpanStore", "span_row"]
