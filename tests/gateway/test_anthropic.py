# ruff: noqa: E501
# mypy: disable-error-code="arg-type, call-overload, union-attr, dict-item, index, attr-defined, unused-ignore, assignment"
"""The anthropic provider: translation both ways, and end to end against a local fake of the
Messages API (streaming with text and tool use)."""

from __future__ import annotations

import asyncio
import json
import time

import openai
import pydantic
import pytest

from pilothouse.gateway.providers.anthropic import (
    JSON_OBJECT_INSTRUCTION,
    to_completion,
    to_messages,
)
from tests.gateway.conftest import GatewayFactory, SpanSink, Upstream
from tests.gateway.test_app import TOOLS


def claude(url: str) -> dict[str, object]:
    return {
        "deployments": [
            {"provider": "anthropic", "model": "claude-x", "base_url": url, "api_key": "sk-ant"}
        ]
    }


def test_request_translation() -> None:
    body = {
        "model": "c",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
            ]},
            {"role": "tool", "tool_call_id": "t1", "content": "cold"},
            {"role": "user", "content": "thanks"},
        ],
        "max_tokens": 100,
        "stop": "END",
        "temperature": 0.3,
        "tools": TOOLS,
        "tool_choice": "required",
        "user": "u1",
        "top_k": 4,
        "frequency_penalty": 0.5,
    }  # fmt: skip
    out = to_messages(body)
    assert out["system"] == "Be brief."
    assert out["max_tokens"] == 100 and out["stop_sequences"] == ["END"]
    assert out["temperature"] == 0.3 and out["top_k"] == 4
    assert "frequency_penalty" not in out  # no Anthropic equivalent
    assert out["tool_choice"] == {"type": "any"}
    assert out["tools"][0]["input_schema"]["properties"] == {"city": {"type": "string"}}
    assert out["metadata"] == {"user_id": "u1"}
    roles = [m["role"] for m in out["messages"]]
    assert roles == ["user", "assistant", "user"]  # tool result and next user turn merged
    assert out["messages"][0]["content"][1]["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": "AAAA",
    }
    assert out["messages"][1]["content"][0] == {
        "type": "tool_use",
        "id": "t1",
        "name": "get_weather",
        "input": {"city": "Oslo"},
    }
    assert out["messages"][2]["content"][0]["type"] == "tool_result"
    assert out["messages"][2]["content"][1] == {"type": "text", "text": "thanks"}


def test_response_translation() -> None:
    doc = {
        "id": "msg_1",
        "model": "claude-x",
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "tu", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2},
    }
    out = to_completion(doc)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check."
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {
        "city": "Oslo"
    }
    assert out["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}


def test_chat_through_anthropic(make_gateway: GatewayFactory, upstream: Upstream) -> None:
    gw = make_gateway({"claude": claude(upstream.url)})
    answer = gw.client().chat.completions.create(
        model="claude",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
    )
    assert answer.choices[0].message.content == "claude: hi"
    assert answer.usage is not None and answer.usage.prompt_tokens == 11
    seen = upstream.fake.seen[-1]
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == "sk-ant"
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.body["system"] == "Be brief." and seen.body["model"] == "claude-x"


def test_streaming_text_and_tool_use(make_gateway: GatewayFactory, upstream: Upstream) -> None:
    gw = make_gateway({"claude": claude(upstream.url)})
    sink = SpanSink()
    gw.runtime.traces = sink  # type: ignore[assignment]
    chunks = list(
        gw.client().chat.completions.create(
            model="claude",
            messages=[{"role": "user", "content": "weather?"}],
            tools=TOOLS,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "tok0 tok1 tok2 tok3 tok4 "
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert calls[0].id == "toolu_1" and calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert "".join(tc.function.arguments or "" for tc in calls) == '{"city": "Paris"}'  # type: ignore[union-attr]
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["tool_calls"]
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (11, 5)
    span = sink.last()
    assert span.provider == "anthropic" and span.output_tokens == 5
    assert span.output["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'


def test_anthropic_overload_is_retried(make_gateway: GatewayFactory, upstream: Upstream) -> None:
    gw = make_gateway({"claude": claude(upstream.url)}, router={"backoff": 0})
    upstream.fake.failures = [(529, "Overloaded")]
    answer = gw.client().chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content == "claude: hi"
    assert len(upstream.fake.seen) == 2


WEATHER_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "weather",
        "schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


class Weather(pydantic.BaseModel):
    city: str


def test_json_schema_becomes_a_forced_tool() -> None:
    messages = [{"role": "user", "content": "weather?"}]
    out = to_messages({"messages": messages, "response_format": WEATHER_SCHEMA})
    assert out["tools"] == [
        {
            "name": "weather",
            "description": "Give the answer in this exact shape.",
            "input_schema": WEATHER_SCHEMA["json_schema"]["schema"],
        }
    ]
    assert out["tool_choice"] == {"type": "tool", "name": "weather"}
    # With the client's own tools the model calls one of them or answers through the schema.
    both = to_messages({"messages": messages, "response_format": WEATHER_SCHEMA, "tools": TOOLS})
    assert [t["name"] for t in both["tools"]] == ["get_weather", "weather"]
    assert both["tool_choice"] == {"type": "any"}
    assert to_messages({"messages": messages, "response_format": {"type": "text"}}) == to_messages(
        {"messages": messages}
    )


def test_json_object_is_a_system_instruction() -> None:
    out = to_messages(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "x"},
            ],
            "response_format": {"type": "json_object"},
        }
    )
    assert out["system"] == "Be brief.\n\n" + JSON_OBJECT_INSTRUCTION
    assert "tools" not in out


def test_json_schema_answer_through_the_sdk(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    gw = make_gateway({"claude": claude(upstream.url)})
    client = gw.client()
    messages = [{"role": "user", "content": "weather?"}]
    answer = client.chat.completions.create(
        model="claude", messages=messages, response_format=WEATHER_SCHEMA
    )
    choice = answer.choices[0]
    assert choice.message.content == '{"city":"Paris"}'
    assert choice.message.tool_calls is None and choice.finish_reason == "stop"
    assert upstream.fake.seen[-1].body["tool_choice"] == {"type": "tool", "name": "weather"}
    parsed = client.chat.completions.parse(
        model="claude", messages=messages, response_format=Weather
    )
    assert parsed.choices[0].message.parsed == Weather(city="Paris")


def test_json_schema_answer_streams_as_content(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    gw = make_gateway({"claude": claude(upstream.url)})
    chunks = list(
        gw.client().chat.completions.create(
            model="claude",
            messages=[{"role": "user", "content": "weather?"}],
            response_format=WEATHER_SCHEMA,
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"city": "Paris"}
    assert not [c for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_bad_response_format_is_a_400(make_gateway: GatewayFactory, upstream: Upstream) -> None:
    gw = make_gateway({"claude": claude(upstream.url)})
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(
            model="claude",
            messages=[{"role": "user", "content": "hi"}],
            response_format={"type": "yaml"},  # type: ignore[typeddict-item]
        )
    assert caught.value.param == "response_format.type"
    assert not upstream.fake.seen


def test_n_fans_out_and_merges(make_gateway: GatewayFactory, upstream: Upstream) -> None:
    gw = make_gateway({"claude": claude(upstream.url)})
    answer = gw.client().chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "hi"}], n=3
    )
    assert [c.index for c in answer.choices] == [0, 1, 2]
    assert {c.message.content for c in answer.choices} == {"claude: hi"}
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (33, 12)
    assert answer.usage.total_tokens == 45
    assert len(upstream.fake.seen) == 3 and "n" not in upstream.fake.seen[0].body


def test_n_fails_as_one_and_is_retried(make_gateway: GatewayFactory, upstream: Upstream) -> None:
    gw = make_gateway({"claude": claude(upstream.url)}, router={"backoff": 0})
    upstream.fake.failures = [(529, "Overloaded")]
    answer = gw.client().chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "hi"}], n=2
    )
    assert len(answer.choices) == 2
    assert len(upstream.fake.seen) >= 3  # one of the first two failed: both asked again


def test_n_streams_merge_as_choices(make_gateway: GatewayFactory, upstream: Upstream) -> None:
    gw = make_gateway({"claude": claude(upstream.url)})
    upstream.fake.chunk_delay = 0.01  # so the streams interleave
    sink = SpanSink()
    gw.runtime.traces = sink  # type: ignore[assignment]
    chunks = list(
        gw.client().chat.completions.create(
            model="claude",
            messages=[{"role": "user", "content": "hi"}],
            n=3,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    texts: dict[int, str] = {}
    finishes: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert texts == dict.fromkeys(range(3), "tok0 tok1 tok2 tok3 tok4 ")
    assert finishes == dict.fromkeys(range(3), "stop")
    assert len({c.id for c in chunks}) == 1
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and chunks[-1].usage is usage[0]
    assert (usage[0].prompt_tokens, usage[0].completion_tokens, usage[0].total_tokens) == (
        33,
        15,
        48,
    )
    assert len(upstream.fake.seen) == 3
    assert sink.last().output_tokens == 15


async def test_n_streams_all_close_when_the_client_leaves(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    upstream.fake.chunks = 50
    upstream.fake.chunk_delay = 0.05
    gw = make_gateway({"claude": claude(upstream.url)})
    client = gw.async_client()
    stream = await client.chat.completions.create(
        model="claude", messages=[{"role": "user", "content": "hi"}], n=3, stream=True
    )
    seen = 0
    async for _chunk in stream:
        seen += 1
        if seen == 6:
            break
    await stream.close()
    await client.close()
    deadline = time.monotonic() + 5
    while upstream.fake.disconnects < 3 and time.monotonic() < deadline:  # noqa: ASYNC110 - polls another thread
        await asyncio.sleep(0.02)
    assert upstream.fake.disconnects == 3
