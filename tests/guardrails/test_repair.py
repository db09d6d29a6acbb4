"""JSON-schema output validation with one automatic repair, through the openai client."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from tests.conftest import LiveServer
from tests.gateway.conftest import Gateway, GatewayFactory, SpanSink, openai_model
from tests.guardrails.upstreams import ScriptedUpstream

SCHEMA = {
    "type": "object",
    "required": ["answer", "confidence"],
    "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"}},
}
VALID = json.dumps({"answer": "Paris", "confidence": 0.9})


def scripted(*answers: str) -> Callable[[dict[str, Any]], str]:
    """Answers in order; the last one repeats."""
    queue = list(answers)
    return lambda body: queue.pop(0) if len(queue) > 1 else queue[0]


@pytest.fixture
def structured(make_gateway: GatewayFactory) -> Iterator[Callable[..., tuple[Gateway, Any]]]:
    servers: list[LiveServer] = []

    def start(*answers: str, repair: bool = True) -> tuple[Gateway, ScriptedUpstream]:
        upstream = ScriptedUpstream(scripted(*answers))
        server = LiveServer(upstream)
        servers.append(server)
        server.__enter__()
        rule = {"check": "json_schema", "action": "block", "options": {"schema": SCHEMA}}
        if repair:
            rule["options"]["repair"] = True  # type: ignore[index]
        gw = make_gateway({"structured": openai_model(server.url)})
        gw.write_config(
            {
                "models": {"structured": openai_model(server.url)},
                "guardrails": {"policies": {"json": {"output": [rule]}}, "gateway_policy": "json"},
            }
        )
        from pilothouse.gateway.plugin import gateway_of

        assert gateway_of(gw.runtime).source.reload_if_changed()
        gw.runtime.traces = SpanSink()  # type: ignore[assignment]
        return gw, upstream

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def ask(gw: Gateway) -> Any:
    return gw.client().chat.completions.create(
        model="structured",
        messages=[{"role": "user", "content": "Capital of France, as JSON?"}],
    )


def test_an_invalid_answer_is_repaired_once(structured: Any) -> None:
    gw, upstream = structured('{"answer": "Paris", "confidence": "high"}', VALID)
    answer = ask(gw)
    assert json.loads(answer.choices[0].message.content) == json.loads(VALID)
    # Both attempts are billed to the call.
    assert answer.usage.prompt_tokens == 20 and answer.usage.completion_tokens == 10
    assert len(upstream.bodies) == 2
    second = upstream.bodies[1]["messages"]
    assert second[0] == {"role": "user", "content": "Capital of France, as JSON?"}
    assert second[1] == {
        "role": "assistant",
        "content": '{"answer": "Paris", "confidence": "high"}',
    }
    assert second[2]["role"] == "user"
    assert "at confidence: 'high' is not of type 'number'" in second[2]["content"]
    span = gw.runtime.traces.last()
    recorded = span.attributes["pilothouse.guardrails"]
    attempts = recorded["repair"]["attempts"]
    assert [a["valid"] for a in attempts] == [False, True]
    assert attempts[0]["signals"] == ["schema:confidence:type"]
    assert attempts[0]["output"] == '{"answer": "Paris", "confidence": "high"}'
    assert [d["verdict"] for d in recorded["decisions"]] == ["block", "allow"]
    assert json.loads(span.output["content"]) == json.loads(VALID)
    assert span.input_tokens == 20


def test_not_json_at_all_is_repaired_too(structured: Any) -> None:
    gw, upstream = structured("Sure! The answer is Paris.", f"```json\n{VALID}\n```")
    answer = ask(gw)
    assert json.loads(answer.choices[0].message.content.strip("`json\n")) == json.loads(VALID)
    assert "does not parse as JSON" in upstream.bodies[1]["messages"][-1]["content"]


def test_a_second_invalid_answer_is_blocked(structured: Any) -> None:
    gw, upstream = structured('{"answer": 1}', '{"answer": 2}', VALID)
    with pytest.raises(openai.BadRequestError) as info:
        ask(gw)
    assert info.value.code == "guardrail_blocked"
    assert "'json_schema' check fired on the output" in info.value.message
    assert len(upstream.bodies) == 2  # one repair, never more
    attempts = gw.runtime.traces.last().attributes["pilothouse.guardrails"]["repair"]["attempts"]
    assert [a["valid"] for a in attempts] == [False, False]


def test_without_repair_an_invalid_answer_is_blocked_at_once(structured: Any) -> None:
    gw, upstream = structured('{"answer": 1}', VALID, repair=False)
    with pytest.raises(openai.BadRequestError):
        ask(gw)
    assert len(upstream.bodies) == 1


def test_a_valid_answer_is_not_repaired(structured: Any) -> None:
    gw, upstream = structured(VALID)
    assert json.loads(ask(gw).choices[0].message.content) == json.loads(VALID)
    assert len(upstream.bodies) == 1
    assert "repair" not in gw.runtime.traces.last().attributes["pilothouse.guardrails"]


def test_streamed_json_is_validated_once_whole_and_never_repaired(structured: Any) -> None:
    gw, upstream = structured(VALID)
    messages: Any = [{"role": "user", "content": "JSON please"}]
    chunks = list(
        gw.client().chat.completions.create(model="structured", messages=messages, stream=True)
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == json.loads(VALID)  # partial JSON mid-stream did not block
    gw, upstream = structured('{"answer": 1}', VALID)
    with pytest.raises(openai.APIError) as info:
        list(
            gw.client().chat.completions.create(model="structured", messages=messages, stream=True)
        )
    assert "json_schema" in str(info.value)
    assert len(upstream.bodies) == 1
