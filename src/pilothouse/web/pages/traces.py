"""Traces: the filtered list, one trace as a span tree with a waterfall, sessions, scores.

Reads go through the tracing store's queries (:mod:`pilothouse.store.traces`) and the
conversions of the trace API (:mod:`pilothouse.tracing.api`), so the page and ``/api/traces``
always agree. Filters live in the query string, so a filtered view is a link to share.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.responses import Response

from pilothouse.errors import BadRequest, NotFound
from pilothouse.store import annotations as annotation_store
from pilothouse.store import traces as store
from pilothouse.store.types import utcnow
from pilothouse.tracing.api import span_tree, summary_of
from pilothouse.web.ui import Page

PAGE_SIZE = 50
#: Time ranges offered by the filters: name -> seconds (0 = all time).
RANGES = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "all": 0}
SORTS = {"start_time": "Time", "latency": "Latency", "cost": "Cost", "tokens": "Tokens"}
TEXT_FILTERS = ("q", "name", "model", "user_id", "session_id", "tag", "environment")
NUMBER_FILTERS = ("min_latency_ms", "min_cost_usd")
#: Every query parameter the list understands, in the order links are written.
PARAMS = ("range", *TEXT_FILTERS, "status", *NUMBER_FILTERS, "sort", "order")


def _number(page: Page, name: str) -> float | None:
    raw = page.query(name).strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a number", param=name) from None
    if value < 0 or value != value:  # negative or NaN
        raise BadRequest(f"{name} must be a number >= 0", param=name)
    return value


def filters_of(page: Page) -> tuple[dict[str, str], store.TraceFilter]:
    """The list's filters as given (to refill the form and links) and as a TraceFilter."""
    given = {name: page.query(name).strip()[:500] for name in PARAMS}
    given["range"] = given["range"] if given["range"] in RANGES else "24h"
    given["sort"] = given["sort"] if given["sort"] in SORTS else "start_time"
    given["order"] = "asc" if given["order"] == "asc" else "desc"
    if given["status"] not in ("", "ok", "error"):
        raise BadRequest("status must be ok or error", param="status")
    seconds = RANGES[given["range"]]
    text = {name: given[name] or None for name in TEXT_FILTERS}
    filters = store.TraceFilter(
        start_ns_from=(time.time_ns() - seconds * 1_000_000_000) if seconds else None,
        name=text["name"],
        model=text["model"],
        user_id=text["user_id"],
        session_id=text["session_id"],
        tags=[text["tag"]] if text["tag"] else (),
        environment=text["environment"],
        status=given["status"] or None,
        min_latency_ms=_number(page, "min_latency_ms"),
        min_cost_usd=_number(page, "min_cost_usd"),
        text=text["q"],
    )
    return given, filters


def _sort_value(sort: str, row: Any) -> Any:
    if sort == "tokens":
        return row["input_tokens"] + row["output_tokens"]
    column = {"start_time": "start_ns", "latency": "duration_ms", "cost": "cost_usd"}[sort]
    return row[column]


def encode_after(sort: str, row: Any) -> str:
    raw = orjson.dumps([sort, _sort_value(sort, row), row["trace_id"]])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_after(sort: str, cursor: str) -> tuple[Any, str] | None:
    if not cursor:
        return None
    try:
        kind, value, trace_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=="))
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError):
        raise BadRequest("this page link is broken; start from the first page") from None
    if kind != sort or not isinstance(trace_id, str) or not isinstance(value, int | float):
        raise BadRequest("this page link belongs to another sort order", param="after")
    return value, trace_id


def link(page: Page, given: dict[str, str], **changes: str) -> str:
    """The trace list URL with ``given`` filters, some changed (empty values dropped)."""
    values = {**given, **changes}
    query = urlencode([(k, v) for k, v in values.items() if v and k in (*PARAMS, "after")])
    return page.url("/traces") + ("?" + query if query else "")


def trace_list(page: Page) -> Response:
    page.require("read")
    given, filters = filters_of(page)
    after = decode_after(given["sort"], page.query("after"))
    with page.runtime.db.read() as conn:
        rows = store.list_traces(
            conn,
            page.project_id,
            filters,
            sort=given["sort"],
            descending=given["order"] == "desc",
            after=after,
            limit=PAGE_SIZE + 1,
        )
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    next_url = link(page, given, after=encode_after(given["sort"], rows[-1])) if more else None
    return page.render(
        "traces/list.html",
        traces=[summary_of(r) for r in rows],
        given=given,
        ranges=RANGES,
        sorts=SORTS,
        next_url=next_url,
        first_url=link(page, given) if after else None,
        link=lambda **changes: link(page, given, **changes),
    )


def _flatten(nodes: list[dict[str, Any]], depth: int = 0) -> list[dict[str, Any]]:
    """The span tree in display order, each span with its depth."""
    out: list[dict[str, Any]] = []
    for node in sorted(nodes, key=lambda n: (n["start_ns"], n["span_id"])):
        out.append({**node, "depth": depth})
        out.extend(_flatten(node["children"], depth + 1))
    return out


def span_kind(span: dict[str, Any]) -> str:
    """The colour class of a span in the waterfall."""
    if span["status_code"] == "error":
        return "error"
    operation = (span.get("operation") or "").lower()
    if operation in ("chat", "completion", "embeddings"):
        return "llm"
    if operation in ("tool", "retrieval", "agent", "chain", "guardrail"):
        return operation
    return "span"


def _trace(page: Page, trace_id: str) -> tuple[Any, list[Any], list[Any]]:
    if len(trace_id) != 32 or any(c not in "0123456789abcdef" for c in trace_id.lower()):
        raise NotFound(f"trace {trace_id!r} not found")
    trace_id = trace_id.lower()
    with page.runtime.db.read() as conn:
        row = store.get_trace(conn, page.project_id, trace_id)
        if row is None:
            raise NotFound(f"trace {trace_id} not found in this project")
        spans = store.spans_of(conn, page.project_id, trace_id)
        scores = store.scores_of(conn, page.project_id, [trace_id])
    return row, spans, scores


def trace_detail(page: Page) -> Response:
    page.require("read")
    row, span_rows, scores = _trace(page, page.request.path_params["trace_id"])
    flat = _flatten(span_tree(span_rows, row["start_ns"]))
    total_ms = max(row["duration_ms"], 0.001)
    for span in flat:
        span["kind_class"] = span_kind(span)
        span["start_frac"] = span["offset_ms"] / total_ms
        span["length_frac"] = span["duration_ms"] / total_ms
    chosen = page.query("span")
    selected = next((s for s in flat if s["span_id"] == chosen), flat[0] if flat else None)
    queues = []
    if page.can("write"):
        with page.runtime.db.read() as conn:
            queues = annotation_store.list_queues(conn, page.project_id)
    return page.render(
        "traces/detail.html",
        trace=summary_of(row),
        spans=flat,
        selected=selected,
        scores=[dict(s) for s in scores],
        queues=queues,
    )


def _score_value(raw: str) -> dict[str, Any]:
    text = raw.strip()
    if text.lower() in ("true", "false"):
        return {"data_type": "boolean", "value": 1.0 if text.lower() == "true" else 0.0}
    try:
        number = float(text)
    except ValueError:
        return {"data_type": "categorical", "value": None, "string_value": text[:500]}
    if number != number or number in (float("inf"), float("-inf")):
        raise BadRequest("the score must be a finite number, true/false or a word", param="value")
    return {"data_type": "numeric", "value": number}


def add_score(page: Page) -> Response:
    """Add a human score (number, true/false or a category) and optional comment."""
    principal = page.require("write")
    row, span_rows, _ = _trace(page, page.request.path_params["trace_id"])
    name = page.form.get("name", "").strip()
    value = page.form.get("value", "").strip()
    comment = page.form.get("comment", "").strip()[:10_000] or None
    if not name or len(name) > 200:
        raise BadRequest("the score needs a name of 1 to 200 characters", param="name")
    if not value:
        raise BadRequest("the score needs a value", param="value")
    span_id = page.form.get("span_id") or None
    if span_id is not None and span_id not in {s["span_id"] for s in span_rows}:
        raise BadRequest("that span is not part of this trace", param="span_id")
    values = {"value": None, "string_value": None, **_score_value(value)}
    with page.runtime.db.write() as conn:
        store.insert_score(
            conn,
            project_id=page.project_id,
            trace_id=row["trace_id"],
            span_id=span_id,
            name=name,
            source="human",
            comment=comment,
            author=principal.name,
            metadata={},
            created_at=utcnow(),
            **values,
        )
    target = page.url(f"/traces/{row['trace_id']}") + (f"?span={span_id}" if span_id else "")
    return page.redirect(target + "#scores", f"Score “{name}” added.")


def session(page: Page) -> Response:
    """A whole conversation: every trace of one session, oldest first."""
    page.require("read")
    session_id = page.request.path_params["session_id"][:500]
    with page.runtime.db.read() as conn:
        rows = store.session_traces(conn, page.project_id, session_id, limit=500)
    if not rows:
        raise NotFound(f"session {session_id!r} not found in this project")
    return page.render(
        "traces/session.html", session_id=session_id, traces=[summary_of(r) for r in rows]
    )
