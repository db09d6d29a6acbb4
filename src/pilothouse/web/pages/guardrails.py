"""Guardrails: the policies and checks in force, a form to try a policy on a text, and the
recent decisions the gateway recorded on its spans (``/guardrails/decisions``).

Everything comes from the process's guardrails (:func:`pilothouse.guardrails.api.guardrails_of`),
the same object the gateway uses, so what the page shows is what calls get.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from pilothouse.errors import BadRequest
from pilothouse.store import guardrail_decisions as store
from pilothouse.web.ui import Page

WHERES = ("input", "context", "output")
MAX_TEXT = 100_000


def _guardrails(page: Page) -> Any:
    from pilothouse.guardrails.api import guardrails_of

    return guardrails_of(page.runtime)


def guardrails(page: Page) -> Response:
    """GET: policies and checks. POST: run a policy on the text in the form and show why."""
    page.require("read")
    guard = _guardrails(page)
    policies = [p.to_dict() for p in guard.policies.values()]
    checks = sorted(guard.checks.values(), key=lambda c: c.name)
    tried: dict[str, Any] | None = None
    form = {"text": "", "policy": "default", "where": "input"}
    if page.is_post:
        form = {k: page.form.get(k, form[k]) for k in form}
        if len(form["text"]) > MAX_TEXT:
            raise BadRequest(f"the text is longer than {MAX_TEXT} characters", param="text")
        if form["where"] not in WHERES:
            raise BadRequest("where must be input, context or output", param="where")
        from pilothouse.guardrails.rewrite import Vault

        decision = guard.check(form["text"], form["policy"], form["where"], Vault())
        tried = decision.public(include_text=not decision.blocked)
    return page.render(
        "guardrails.html",
        policies=policies,
        checks=checks,
        wheres=WHERES,
        form=form,
        tried=tried,
    )


# --- recent decisions, from the traces --------------------------------------------------------

#: range name -> seconds
RANGES = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
VERDICTS = ("block", "modify", "flag", "allow")
PAGE_SIZE = 50
#: Decision spans read at once, and traces looked at at once (through the traces' index).
BATCH = 200
SCAN_TRACES = 2000
#: Reads for one page before it offers "older" instead (when the filters match little).
MAX_READS = 5
#: Per-check counts cover the newest this many traces of the range.
COUNTED_TRACES = 5000
COUNTED_ROWS = 5000


def _cursor(raw: str) -> tuple[int, str] | None:
    start, _, trace_id = raw.partition(":")
    if not start.isdigit() or len(trace_id) != 32:
        return None
    return int(start), trace_id


def _entries(row: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per checked text of a decision span: what the page lists."""
    summary = row["guardrails"] if isinstance(row["guardrails"], dict) else {}
    out = []
    for d in summary.get("decisions") or []:
        if not isinstance(d, dict):
            continue
        fired = [c for c in d.get("checks") or [] if isinstance(c, dict) and c.get("fired")]
        out.append(
            {
                "trace_id": row["trace_id"],
                "span_id": row["span_id"],
                "time": datetime.fromtimestamp(row["start_ns"] / 1e9, UTC),
                "model": row["request_model"],
                "policy": d.get("policy") or summary.get("policy"),
                "where": d.get("where"),
                "path": d.get("path"),
                "verdict": d.get("verdict") or "allow",
                "blocked_by": d.get("blocked_by"),
                "fired": fired,
                "latency_ms": d.get("latency_ms"),
            }
        )
    return out


def _matches(entry: dict[str, Any], check: str, action: str, verdict: str) -> bool:
    if verdict and entry["verdict"] != verdict:
        return False
    if check or action:
        return any(
            (not check or c.get("check") == check) and (not action or c.get("action") == action)
            for c in entry["fired"]
        )
    return True


def _counts(rows: list[dict[str, Any]]) -> tuple[list[tuple[str, str, int]], dict[str, int]]:
    """Fired rules by (check, action), and texts by verdict."""
    fired: dict[tuple[str, str], int] = {}
    verdicts: dict[str, int] = {}
    for row in rows:
        for entry in _entries(row):
            verdicts[entry["verdict"]] = verdicts.get(entry["verdict"], 0) + 1
            for c in entry["fired"]:
                key = (str(c.get("check")), str(c.get("action")))
                fired[key] = fired.get(key, 0) + 1
    ranked = sorted(fired.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(check, action, n) for (check, action), n in ranked], verdicts


def _page(
    conn: Any,
    project_id: int,
    start_ns: int,
    cursor: store.Cursor | None,
    filters: tuple[str, str, str],
) -> tuple[list[dict[str, Any]], store.Cursor | None, bool, bool]:
    """One page of matching decisions: (entries, cursor after them, more to read, stopped
    after :data:`MAX_READS` reads). Pages end between traces, so no trace is split."""
    shown: list[dict[str, Any]] = []
    for _ in range(MAX_READS):
        scan = store.decision_spans(conn, project_id, start_ns, cursor, SCAN_TRACES, BATCH)
        rows, full = scan.rows, len(scan.rows) == BATCH
        if full and rows[-1]["trace_id"] != rows[0]["trace_id"]:
            last = rows[-1]["trace_id"]  # the limit may have cut this trace: read it next time
            rows = [r for r in rows if r["trace_id"] != last]
        for i, row in enumerate(rows):
            shown.extend(e for e in _entries(row) if _matches(e, *filters))
            cursor = (row["trace_start_ns"], row["trace_id"])
            boundary = i + 1 == len(rows) or rows[i + 1]["trace_id"] != row["trace_id"]
            if len(shown) >= PAGE_SIZE and boundary:
                more = full or i + 1 < len(rows) or scan.last is not None
                return shown, cursor, more, False
        if not full:
            if scan.last is None:
                return shown, cursor, False, False
            cursor = scan.last
    return shown, cursor, True, True


def decisions(page: Page) -> Response:
    """Recent guardrail decisions from the gateway's spans: filters, per-check counts, pages."""
    page.require("read")
    chosen = page.query("range", "24h")
    chosen = chosen if chosen in RANGES else "24h"
    check = page.query("check").strip()[:100]
    action = page.query("action").strip()[:50]
    verdict = page.query("verdict").strip()
    if verdict and verdict not in VERDICTS:
        raise BadRequest(f"verdict must be one of {', '.join(VERDICTS)}", param="verdict")
    start_ns = (int(time.time()) - RANGES[chosen]) * 1_000_000_000
    cursor = _cursor(page.query("before"))
    with page.runtime.db.read() as conn:
        counted = store.decision_spans(
            conn, page.project_id, start_ns, None, COUNTED_TRACES, COUNTED_ROWS
        ).rows
        shown, cursor, more, scanned_out = _page(
            conn, page.project_id, start_ns, cursor, (check, action, verdict)
        )
    fired, verdicts = _counts(counted)
    params = {"range": chosen, "check": check, "action": action, "verdict": verdict}
    next_url = None
    if more and cursor is not None:
        query = urlencode({**params, "before": f"{cursor[0]}:{cursor[1]}"})
        next_url = page.url("/guardrails/decisions") + "?" + query
    guard = _guardrails(page)
    return page.render(
        "guardrails/decisions.html",
        ranges=RANGES,
        verdicts=VERDICTS,
        checks=sorted(guard.checks),
        params=params,
        decisions=shown,
        fired=fired,
        verdict_counts=verdicts,
        counted=len(counted),
        counted_traces=COUNTED_TRACES,
        scanned_traces=SCAN_TRACES * MAX_READS,
        next_url=next_url,
        scanned_out=scanned_out,
    )
