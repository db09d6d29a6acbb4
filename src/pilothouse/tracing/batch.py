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
from pilothouse.store.trace_writes import json_text
from pilothouse.tracing import priority, summary
from pilothouse.tracing.model import Span
from pilothouse.tracing.writelock import WriteLock


def span_row(span: Span, shared: dict[int, str] | None = None) -> tuple[Any, ...]:
    """The ``spans`` row of a normalized span, in :data:`store.SPAN_COLUMNS` order, its JSON
    columns encoded; ``shared`` keeps the JSON of objects spans share (their resource and
    scope, one per request) so a batch encodes each once."""
    s = span
    if shared is None:
        shared = {}
    resource = shared.get(id(s.resource))
    if resource is None:
        resource = shared[id(s.resource)] = json_text(s.resource)
    scope = shared.get(id(s.scope))
    if scope is None:
        scope = shared[id(s.scope)] = json_text(s.scope)
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
        json_text(s.attributes),
        json_text(s.events) if s.events else "[]",
        json_text(s.links) if s.links else "[]",
        resource,
        scope,
        s.service_name,
        s.operation,
        s.provider,
        s.request_model,
        s.response_model,
        s.input_tokens,
        s.output_tokens,
        s.cost_usd,
        None if s.input is None else json_text(s.input),
        None if s.output is None else json_text(s.output),
        s.ttft_ms,
        s.session_id,
        s.user_id,
        json_text(s.tags) if s.tags else "[]",
        s.prompt_name,
        s.prompt_version,
        s.environment,
        s.release,
    )


class Batch:
    """What storing these spans writes: encoded span rows, trace summaries, rollups."""

    def __init__(self, spans: Sequence[Span], dialect: str) -> None:
        groups = summary.group_by_trace(spans)
        shared: dict[int, str] = {}
        self.params = store.span_params([span_row(s, shared) for s in spans], dialect)
        self.traces = [summary.trace_row(p, t, group) for (p, t), group in groups.items()]
        self.rollups = summary.rollup_rows(groups)


#: Spans a store commits between two WAL checkpoints (SQLite). The checkpoint only keeps the
#: WAL from growing: the WAL was synced after every batch already.
CHECKPOINT_SPANS = 5_000
#: WAL frames (pages) beyond which a checkpoint finishes under the write lock, so that the next
#: transaction writes the WAL from its start again instead of growing it (about 200 MB).
WAL_RESTART_FRAMES = 50_000


class SpanStore:
    """Writes batches of normalized spans to one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = WriteLock(db)  # one writing process at a time on SQLite
        self._uncheckpointed = 0  # spans committed since this store's last checkpoint

    def write(self, spans: Sequence[Span]) -> int:
        """Store ``spans`` (normalized) in one transaction; returns how many were new."""
        if not spans:
            return 0
        batch = Batch(spans, self.db.dialect)
        sqlite = self.db.dialect == "sqlite"
        with self.db.engine.connect() as conn:
            if sqlite:
                store.set_autocheckpoint(conn, False)
            try:
                # Others wait for the lock (and, on PostgreSQL, the rows): never idle in it.
                with priority.urgent(), self._lock.hold(), self.db.write(conn):
                    savepoint = conn.begin_nested()
                    if store.insert_span_params(conn, batch.params) == len(spans):
                        savepoint.commit()
                    else:
                        savepoint.rollback()
                        batch = Batch(_new_spans(conn, spans), self.db.dialect)
                        store.insert_span_params(conn, batch.params)
                    store.upsert_traces(conn, batch.traces)
                    store.upsert_rollups(conn, batch.rollups)
            finally:
                if sqlite:  # the pooled connection serves other writers too
                    store.set_autocheckpoint(conn, True)
            if sqlite:
                store.sync_wal(conn)  # outside the lock, before the spans are acknowledged
                self._uncheckpointed += len(batch.params)
        return len(batch.params)

    def checkpoint_if_due(self) -> bool:
        """SQLite: copy the WAL into the database file once :data:`CHECKPOINT_SPANS` spans were
        committed since the last time; returns whether it did.

        :meth:`write` commits without checkpointing, then syncs the WAL itself once the write
        lock is released (what ``synchronous=FULL`` would do inside it, under 1 ms here), so a
        batch survives a power loss before its exporters are answered. SQLite's automatic
        checkpoint instead ran in nearly every commit (a trace batch dirties index pages all
        over the file when its trace ids are random, as OTLP exporters' are, and outgrew its
        1,000-page threshold): it copied the WAL and synced the database while the other
        processes' writers queued on the write lock. The writer calls this after acknowledging
        the batch; copying the pages of ten times as many spans at once copies a page that
        several batches changed once.
        """
        if self._uncheckpointed < CHECKPOINT_SPANS:
            return False
        self._uncheckpointed = 0
        with self.db.engine.connect() as conn:
            frames, _copied = store.checkpoint(conn)
            if frames > WAL_RESTART_FRAMES:
                # SQLite writes the WAL from its start again only when a transaction begins
                # with every frame copied, which seldom happens when other processes commit
                # during and right after each checkpoint: copy what they added with their
                # writers held off (still PASSIVE: nobody is waited for).
                with priority.urgent(), self._lock.hold():
                    store.checkpoint(conn)
        return True

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
