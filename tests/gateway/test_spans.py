"""The gateway's span of a call: built from the call's facts (in the writer process), long
message strings cut, short ones kept as they are."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, cast

import orjson

from pilothouse.errors import BadRequest
from pilothouse.gateway.call import Call
from pilothouse.gateway.config import Deployment
from pilothouse.gateway.spans import build_span, facts, new_trace_id, truncate
from pilothouse.identity.keys import ApiKey
from pilothouse.tracing import process
from pilothouse.tracing.model import Span


def test_truncate_cuts_only_strings_longer_than_the_limit():
    messages = [
        {"role": "system", "content": "short"},
        {"role": "user", "content": "x" * 30, "name": "u"},
    ]
    cut = truncate(messages, 20)
    assert cut[0] == {"role": "system", "content": "short"}
    assert cut[1]["content"] == "x" * 20 + "... [10 more]"
    assert messages[1]["content"] == "x" * 30  # the request itself is left alone


def test_truncate_keeps_small_values_and_odd_types():
    messages = [{"role": "user", "content": "hé", "n": 2**70}]  # not JSON-encodable by orjson
    assert truncate(messages, 1000) == messages
    assert truncate(messages, 0) is messages
    assert truncate([{"content": "é" * 12}], 12) == [{"content": "é" * 12}]  # 24 bytes, 12 chars
    assert truncate("abc", 2) == "ab... [1 more]"


def _call(**overrides: Any) -> Call:
    key = ApiKey(
        id=7, name="k", project_id=3, org_id=1, scopes=frozenset(), limits={}, expires_at=None
    )
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "y" * 40}],
        "temperature": 0.5,
        "tools": [{"type": "function", "function": {"name": "lookup"}}],
    }
    call = Call(
        runtime=cast(Any, None),
        api_key=key,
        operation="chat",
        body=body,
        request_id="req_1",
        headers={"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"},
        model="m",
        deployment=Deployment(id="m#0", provider="openai", model="gpt-x"),
        attempts=1,
        usage={"prompt_tokens": 5, "completion_tokens": 2},
        output={"role": "assistant", "content": "ok"},
        metadata={"team": "blue"},
        tags=["a"],
        cost_usd=0.25,
    )
    call.ended = call.started + 0.01
    for name, value in overrides.items():
        setattr(call, name, value)
    return call


def _comparable(span: Span) -> dict[str, Any]:
    data = dataclasses.asdict(span)
    data.pop("span_id")
    data["attributes"].pop("pilothouse.overhead_ms")  # read from the clock when taken
    return data


def test_the_writer_process_builds_the_span_the_server_would():
    # The server sends a call's facts as JSON; the writer process builds the span from them.
    call = _call()
    sent = process.parse(orjson.dumps(facts(call), default=str), 25)
    assert _comparable(sent) == _comparable(build_span(call, max_chars=25))
    assert sent.trace_id == "ab" * 16 and sent.parent_span_id == "cd" * 8
    assert sent.input == [{"role": "user", "content": "y" * 25 + "... [15 more]"}]
    assert sent.attributes["gen_ai.request.parameters"] == {"temperature": 0.5}
    assert sent.attributes["gen_ai.request.tools"] == ["lookup"]
    assert sent.attributes["pilothouse.team"] == "blue"
    assert (sent.response_model, sent.cost_usd, sent.tags) == ("gpt-x", 0.25, ["a"])
    assert sent.end_time_ns - sent.start_time_ns == 10_000_000


def test_without_capture_no_content_leaves_the_server():
    call = _call(status="error", error=BadRequest("no good"))
    line = orjson.dumps(facts(call, capture=False), default=str)
    assert b"yyyy" not in line and b"assistant" not in line
    span = process.parse(line, 0)
    assert span.input is None and span.output is None
    assert (span.status_code, span.status_message) == ("error", "no good")
    assert span.attributes["gen_ai.request.parameters"] == {"temperature": 0.5}


def test_new_trace_ids_follow_the_clock_and_stay_unique():
    before = time.time_ns() // 1_000_000
    first = [new_trace_id() for _ in range(1000)]
    time.sleep(0.002)
    later = new_trace_id()
    assert len(set(first)) == 1000
    assert all(len(i) == 32 and int(i, 16) for i in first)
    assert before <= int(first[0][:12], 16) <= time.time_ns() // 1_000_000
    # Time first: a later id sorts after every earlier one, so traces append to the B-trees.
    assert max(first) < later
