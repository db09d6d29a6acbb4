"""Guardrail decisions as traces record them: the ``pilothouse.guardrails`` attribute that the
gateway puts on the span of every call a policy applies to (see ``guardrails/record.py``).

There is no table of decisions: they are found through the traces' ``(project_id, start_ns)``
index, newest first, then each trace's spans by primary key, so a page stops reading as soon
as it has its rows.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pilothouse.store.traces import spans, traces

ATTRIBUTE = "pilothouse.guardrails"


def decision_spans(
    conn: Connection,
    project_id: int,
    start_ns: int,
    before: tuple[int, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to ``limit`` spans with guardrail decisions in traces that started at or after
    ``start_ns`` (and before the ``(trace start_ns, trace_id)`` cursor), newest first."""
    t, s = traces.c, spans.c
    decisions = s.attributes[ATTRIBUTE]
    where = [t.project_id == project_id, t.start_ns >= start_ns]
    if before is not None:
        where.append(sa.tuple_(t.start_ns, t.trace_id) < sa.tuple_(*before))
    query = (
        sa.select(
            t.start_ns.label("trace_start_ns"),
            s.trace_id,
            s.span_id,
            s.name,
            s.start_ns,
            s.request_model,
            s.status_code,
            decisions.label("guardrails"),
        )
        .select_from(
            traces.join(spans, sa.and_(s.project_id == t.project_id, s.trace_id == t.trace_id))
        )
        .where(
            *where,
            decisions.is_not(None),
            sa.func.coalesce(sa.cast(decisions, sa.Text), "null") != "null",
        )
        .order_by(t.start_ns.desc(), t.trace_id.desc(), s.start_ns.desc())
        .limit(limit)
    )
    return [dict(row) for row in conn.execute(query).mappings()]
