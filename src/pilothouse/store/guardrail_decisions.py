"""Guardrail decisions as traces record them: the ``pilothouse.guardrails`` attribute that the
gateway puts on the span of every call a policy applies to (see ``guardrails/record.py``).

There is no table of decisions: a read takes a bounded run of the newest traces through the
traces' ``(project_id, start_ns)`` index, then their spans by primary key, so its cost depends on
how many traces it looks at, never on how many are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pilothouse.store.traces import spans, traces

ATTRIBUTE = "pilothouse.guardrails"

#: A position in the traces, newest first: (trace start_ns, trace_id).
Cursor = tuple[int, str]


@dataclass
class Scan:
    """Decision spans found in a run of traces, and where the run stopped."""

    rows: list[dict[str, Any]]
    #: The oldest trace looked at, if older traces may remain in the range.
    last: Cursor | None


def decision_spans(
    conn: Connection,
    project_id: int,
    start_ns: int,
    before: Cursor | None,
    traces_limit: int,
    rows_limit: int,
) -> Scan:
    """Up to ``rows_limit`` spans with guardrail decisions among the ``traces_limit`` newest
    traces that started at or after ``start_ns`` and before the cursor, newest first. When
    ``rows_limit`` rows come back, the run may hold more: go on from the rows, not ``last``."""
    t, s = traces.c, spans.c
    where = [t.project_id == project_id, t.start_ns >= start_ns]
    if before is not None:
        where.append(sa.tuple_(t.start_ns, t.trace_id) < sa.tuple_(*before))
    window = (
        sa.select(t.project_id, t.trace_id, t.start_ns)
        .where(*where)
        .order_by(t.start_ns.desc(), t.trace_id.desc())
        .limit(traces_limit)
        .subquery()
    )
    w = window.c
    decisions = s.attributes[ATTRIBUTE]
    query = (
        sa.select(
            w.start_ns.label("trace_start_ns"),
            s.trace_id,
            s.span_id,
            s.name,
            s.start_ns,
            s.request_model,
            s.status_code,
            decisions.label("guardrails"),
        )
        .select_from(
            window.join(spans, sa.and_(s.project_id == w.project_id, s.trace_id == w.trace_id))
        )
        .where(
            decisions.is_not(None),
            # SQLite's JSON_EXTRACT of a missing key may come back as the JSON text 'null'.
            sa.cast(decisions, sa.Text) != "null",
        )
        .order_by(w.start_ns.desc(), w.trace_id.desc(), s.start_ns.desc())
        .limit(rows_limit)
    )
    rows = [dict(row) for row in conn.execute(query).mappings()]
    last_query = (
        sa.select(t.start_ns, t.trace_id)
        .where(*where)
        .order_by(t.start_ns.desc(), t.trace_id.desc())
        .offset(traces_limit - 1)
        .limit(1)
    )
    found = conn.execute(last_query).first()
    return Scan(rows, (int(found[0]), str(found[1])) if found is not None else None)
