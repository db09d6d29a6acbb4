"""Online evaluation: rules that score a sample of new production traces in the background.

A rule names a trace filter (the trace list's filters), a sample rate, evaluators, a limit of
traces per run and an optional cost cap. The job ``evals.online`` (every minute) takes, per
enabled rule, the traces that started after the rule's cursor and match its filter, keeps
those whose trace id falls in the sample (a hash of the id, so a trace is in or out for good),
scores at most ``max_per_run`` of them and writes the scores onto the traces (source
``online``). Model-based evaluators' cost adds to the rule's ``spent_usd``; once it reaches
``cost_cap_usd`` the rule stops scoring. Traces that arrive after the cursor passed their start
time are not scored.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

from pilothouse.errors import BadRequest
from pilothouse.evals.evaluators import Sample
from pilothouse.evals.experiments import evaluators_of, with_gateway
from pilothouse.evals.models import ModelClient
from pilothouse.guardrails.gateway import context_documents
from pilothouse.store import evals as store
from pilothouse.store import traces as trace_store
from pilothouse.store.types import utcnow

if TYPE_CHECKING:
    from pilothouse.runtime import Runtime

FILTER_FIELDS = {
    "name", "model", "provider", "user_id", "session_id", "tags", "status", "environment",
    "release", "text", "min_latency_ms", "max_latency_ms", "min_cost_usd", "max_cost_usd",
}  # fmt: skip


def in_sample(trace_id: str, rate: float) -> bool:
    """Whether a trace is in a rule's sample: the same answer every time. It reads the id's
    last 32 bits, random in every id (W3C Trace Context level 2 keeps the randomness at the
    right; the gateway's ids start with the time)."""
    return int(trace_id[-8:], 16) / 0x1_0000_0000 < rate


def check_rule(runtime: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    """A rule's fields, checked (BadRequest names the wrong one)."""
    where = body.get("filter") or {}
    if not isinstance(where, dict) or set(where) - FILTER_FIELDS:
        raise BadRequest(f"filter: known fields are {sorted(FILTER_FIELDS)}", param="filter")
    for key, value in where.items():
        if key == "tags":
            ok = isinstance(value, list) and all(isinstance(t, str) for t in value)
        elif key.startswith(("min_", "max_")):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise BadRequest(f"filter.{key}: wrong type", param="filter")
    specs = evaluators_of(runtime).specs(body.get("evaluators"))
    if any(s.evaluator.kind == "custom" for s in specs):
        raise BadRequest(
            "python evaluators run local code: not in online rules", param="evaluators"
        )
    rate = body.get("sample_rate", 0.1)
    if not isinstance(rate, int | float) or not 0 < rate <= 1:
        raise BadRequest("sample_rate: a number in (0, 1]", param="sample_rate")
    return {
        "filter": where,
        "sample_rate": float(rate),
        "evaluators": body["evaluators"],
        "max_per_run": int(body.get("max_per_run", 100)),
        "cost_cap_usd": body.get("cost_cap_usd"),
        # only traces that start from now on
        "cursor_ns": time.time_ns(),
    }


def _value(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _context(question: Any) -> str | None:
    """The retrieved context of a traced chat (tool messages, ``<context>`` blocks), for
    rubrics such as ``faithfulness``: the LLM judge of groundedness, run after the fact."""
    if not isinstance(question, list):
        return None
    return "\n\n".join(context_documents({"messages": question}, None)) or None


async def run_rule(runtime: Runtime, rule: Any, models: ModelClient) -> int:
    """Score the new sampled traces of one rule; returns how many were scored."""
    where = trace_store.TraceFilter(**rule["filter"], start_ns_from=rule["cursor_ns"] + 1)
    with runtime.db.read() as conn:
        rows = trace_store.list_traces(
            conn, rule["project_id"], where, descending=False, limit=rule["max_per_run"] * 20
        )
    specs = evaluators_of(runtime).specs(rule["evaluators"])
    spent, scored, cursor = rule["spent_usd"], 0, rule["cursor_ns"]
    cap = rule["cost_cap_usd"]
    for row in rows:
        if scored >= rule["max_per_run"] or (cap is not None and spent >= cap):
            break
        cursor = row["start_ns"]
        if not in_sample(row["trace_id"], rule["sample_rate"]):
            continue
        question = _value(row["input"])
        sample = Sample(
            input=question,
            output=_value(row["output"]),
            context=_context(question),
            metadata={"model": row["model"], "trace_name": row["name"]},
            latency_ms=row["duration_ms"],
            cost_usd=row["cost_usd"],
            models=models,
        )
        results = [(spec.name, await spec.run(sample)) for spec in specs]
        now = utcnow()
        values = []
        for name, score in results:
            if score is None:
                continue
            spent += score.cost_usd or 0.0
            values.append(
                {
                    "project_id": rule["project_id"],
                    "trace_id": row["trace_id"],
                    "span_id": None,
                    "name": name,
                    "data_type": "numeric" if score.value is not None else "categorical",
                    "value": score.value,
                    "string_value": None if score.value is not None else "error",
                    "source": "online",
                    "comment": score.error or score.reason or None,
                    "author": f"online-rule:{rule['name']}",
                    "metadata": {
                        "rule_id": rule["id"],
                        "passed": score.passed,
                        "cost_usd": score.cost_usd,
                    },
                    "created_at": now,
                }
            )
        scored += 1
        with runtime.db.write() as conn:
            if values:
                conn.execute(trace_store.scores.insert(), values)
            store.update_rule(
                conn, rule["id"], cursor_ns=cursor, spent_usd=spent, scored=rule["scored"] + scored
            )
    if cursor != rule["cursor_ns"]:
        with runtime.db.write() as conn:
            store.update_rule(conn, rule["id"], cursor_ns=cursor)
    return scored


async def run_all(runtime: Runtime) -> dict[str, int]:
    """One pass over every enabled rule: rule name -> traces scored."""
    with runtime.db.read() as conn:
        rules = [r for r in store.list_rules(conn) if r["enabled"]]
    out: dict[str, int] = {}
    for rule in rules:
        models = ModelClient(runtime, rule["project_id"])
        try:
            out[f"{rule['project_id']}/{rule['name']}"] = await run_rule(runtime, rule, models)
        finally:
            await models.aclose()
    return out


def run_all_sync(runtime: Runtime) -> dict[str, int]:
    """One pass over every enabled rule, from synchronous code (the job)."""
    return with_gateway(runtime, lambda: run_all(runtime))
