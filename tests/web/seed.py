"""Sample traces for the UI tests, sent through the real OTLP/HTTP JSON ingestion path."""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from tests.conftest import ADMIN_KEY

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, list):
        return {"arrayValue": {"values": [_value(x) for x in v]}}
    return {"stringValue": str(v)}


def span(
    trace_id: str,
    name: str,
    start_ms: float,
    length_ms: float,
    *,
    parent: str | None = None,
    error: bool = False,
    attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One OTLP JSON span starting ``start_ms`` after now minus a minute."""
    base = time.time_ns() - 60_000_000_000
    out = {
        "traceId": trace_id,
        "spanId": secrets.token_hex(8),
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(base + int(start_ms * 1e6)),
        "endTimeUnixNano": str(base + int((start_ms + length_ms) * 1e6)),
        "attributes": [{"key": k, "value": _value(v)} for k, v in (attributes or {}).items()],
        "status": {"code": 2, "message": "upstream failed"} if error else {"code": 1},
    }
    if parent:
        out["parentSpanId"] = parent
    return out


def rag_trace(
    question: str = "How do I rotate an API key?",
    answer: str = "Create a new key, deploy it, then revoke the old one.",
    *,
    user: str = "user-42",
    session: str = "sess-1",
    error: bool = False,
    name: str = "answer_question",
) -> list[dict[str, Any]]:
    """A small RAG app's trace: a chain with retrieval, a chat call and a tool call."""
    trace_id = secrets.token_hex(16)
    root = span(
        trace_id,
        name,
        0,
        1450,
        error=error,
        attributes={
            "openinference.span.kind": "CHAIN",
            "input.value": question,
            "output.value": answer,
            "user.id": user,
            "session.id": session,
            "tag.tags": ["rag", "docs"],
        },
    )
    retrieve = span(
        trace_id,
        "retrieve_docs",
        20,
        180,
        parent=root["spanId"],
        attributes={
            "openinference.span.kind": "RETRIEVER",
            "input.value": question,
            "retrieval.documents.0.document.content": "Keys are revoked from Settings.",
            "retrieval.documents.0.document.id": "doc-7",
        },
    )
    chat = span(
        trace_id,
        "chat gpt-4o-mini",
        220,
        1100,
        parent=root["spanId"],
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 412,
            "gen_ai.usage.output_tokens": 57,
            "gen_ai.usage.cost": 0.00041,
            "gen_ai.input.messages": orjson.dumps(
                [
                    {"role": "system", "content": "Answer from the docs."},
                    {"role": "user", "content": question},
                ]
            ).decode(),
            "gen_ai.output.messages": orjson.dumps(
                [{"role": "assistant", "content": answer}]
            ).decode(),
        },
    )
    tool = span(
        trace_id,
        "search_web",
        1330,
        90,
        parent=root["spanId"],
        attributes={"gen_ai.operation.name": "execute_tool", "input.value": '{"q": "rotate key"}'},
    )
    return [root, retrieve, chat, tool]


def export(client: Any, *spans: dict[str, Any]) -> None:
    """POST spans to /v1/traces as OTLP JSON; returns once they are stored."""
    body = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "docs-bot"}}]
                },
                "scopeSpans": [{"spans": list(spans)}],
            }
        ]
    }
    response = client.post("/v1/traces", json=body, headers=AUTH)
    assert response.status_code == 200, response.text


def trace_id_of(spans: list[dict[str, Any]]) -> str:
    return str(spans[0]["traceId"])
