# ruff: noqa: E501
# mypy: disable-error-code="arg-type, call-overload, union-attr, dict-item, index, attr-defined, unused-ignore, assignment"
"""The /v1 API end to end: the official openai client against the gateway on a real socket,
in front of the mock provider and of a fake upstream on another socket."""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest
import sqlalchemy as sa

from tests.conftest import ADMIN_KEY
from tests.gateway.conftest import GatewayFactory, SpanSink, Upstream, openai_model

MESSAGES = [{"role": "user", "content": "Where is my refund?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def test_mock_models_work_with_no_api_key(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(
        {
            "mock/echo": {"deployments": [{"provider": "mock", "model": "echo"}]},
            "mock/lorem": {"deployments": [{"provider": "mock", "model": "lorem"}]},
        }
    )
    client = gw.client()
    raw = client.chat.completions.with_raw_response.create(model="mock/echo", messages=MESSAGES)
    answer = raw.parse()
    assert answer.choices[0].message.content == "Where is my refund?"
    assert answer.usage is not None and answer.usage.completion_tokens == 4
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-pilothouse-deployment"] == "mock/echo#0"
    assert float(raw.headers["x-pilothouse-overhead-ms"]) >= 0
    stream = client.chat.completions.create(
        model="mock/lorem",
        messages=MESSAGES,
        stream=True,
        max_tokens=6,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "lorem ipsum dolor sit amet consectetur"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6


def test_chat_through_an_openai_compatible_upstream(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    gw = make_gateway({"gpt": openai_model(upstream.url, "gpt-up", api_key="sk-upstream")})
    answer = gw.client().chat.completions.create(
        model="gpt",
        messages=MESSAGES,
        n=2,
        stop=["\n"],
        seed=7,
        temperature=0.1,
        response_format={"type": "json_object"},
        extra_body={"top_k": 5, "repetition_penalty": 1.1},
        metadata={"tags": ["a"], "team": "x"},
    )
    assert [c.message.content for c in answer.choices] == ["fake: Where is my refund?"] * 2
    seen = upstream.fake.seen[-1]
    assert seen.headers["authorization"] == "Bearer sk-upstream"
    body = seen.body
    assert body["model"] == "gpt-up"
    assert body["n"] == 2 and body["stop"] == ["\n"] and body["seed"] == 7
    assert body["response_format"] == {"type": "json_object"}
    assert body["top_k"] == 5 and body["repetition_penalty"] == 1.1  # passed through untouched
    assert "metadata" not in body  # gateway metadata goes to the trace, not upstream


def test_tools_round_trip(make_gateway: GatewayFactory, upstream: Upstream) -> None:
    gw = make_gateway({"gpt": openai_model(upstream.url)})
    answer = gw.client().chat.completions.create(
        model="gpt", messages=MESSAGES, tools=TOOLS, tool_choice="auto"
    )
    call = answer.choices[0].message.tool_calls
    assert call is not None and call[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert answer.choices[0].finish_reason == "tool_calls"
    assert upstream.fake.seen[-1].body["tools"] == TOOLS


def test_stream_with_and_without_usage(make_gateway: GatewayFactory, upstream: Upstream) -> None:
    gw = make_gateway({"gpt": openai_model(upstream.url)})
    sink = SpanSink()
    gw.runtime.traces = sink  # type: ignore[assignment]
    client = gw.client()
    with_usage = list(
        client.chat.completions.create(
            model="gpt", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert with_usage[-1].usage is not None and with_usage[-1].usage.total_tokens == 12
    plain = list(client.chat.completions.create(model="gpt", messages=MESSAGES, stream=True))
    assert all(c.usage is None for c in plain)
    assert "".join(c.choices[0].delta.content or "" for c in plain) == "tok0 tok1 tok2 tok3 tok4 "
    # usage was asked upstream anyway, so the trace has the tokens
    assert upstream.fake.seen[-1].body["stream_options"] == {"include_usage": True}
    span = sink.last(2)
    assert span.output_tokens == 5 and span.input_tokens == 7
    assert span.ttft_ms is not None and span.attributes["pilothouse.tpot_ms"] >= 0
    assert span.output == {"role": "assistant", "content": "tok0 tok1 tok2 tok3 tok4 "}


async def test_async_client_stream_and_embeddings(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    gw = make_gateway(
        {
            "gpt": openai_model(upstream.url),
            "embed": {**openai_model(upstream.url, "emb"), "operation": "embeddings"},
        }
    )
    client = gw.async_client()
    stream = await client.chat.completions.create(model="gpt", messages=MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text.startswith("tok0")
    result = await client.embeddings.create(model="embed", input=["a", "b"])
    assert len(result.data) == 2 and result.usage.prompt_tokens == 6
    legacy = await client.completions.create(model="gpt", prompt="say done")
    assert legacy.choices[0].text == "done"
    await client.close()


def test_models_lists_what_the_key_may_use(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(
        {
            "mock/echo": {"deployments": [{"provider": "mock", "model": "echo"}]},
            "mock/lorem": {"deployments": [{"provider": "mock", "model": "lorem"}]},
        }
    )
    assert sorted(m.id for m in gw.client().models.list()) == ["mock/echo", "mock/lorem"]
    key, _ = gw.runtime.keys.create(1, "limited", ["gateway"], limits={"models": ["mock/e*"]})
    limited = gw.client(key)
    assert [m.id for m in limited.models.list()] == ["mock/echo"]
    assert limited.models.retrieve("mock/echo").id == "mock/echo"
    with pytest.raises(openai.PermissionDeniedError, match="may not use the model"):
        limited.chat.completions.create(model="mock/lorem", messages=MESSAGES)
    with pytest.raises(openai.NotFoundError):
        limited.models.retrieve("mock/lorem")


def test_auth_errors(make_gateway: GatewayFactory) -> None:
    gw = make_gateway()
    with pytest.raises(openai.AuthenticationError) as caught:
        gw.client("ph-wrong").chat.completions.create(model="mock/echo", messages=MESSAGES)
    assert caught.value.code == "invalid_api_key"
    assert caught.value.type == "authentication_error"  # type: ignore[attr-defined]
    no_scope, _ = gw.runtime.keys.create(1, "reader", ["read"])
    with pytest.raises(openai.PermissionDeniedError, match="gateway"):
        gw.client(no_scope).chat.completions.create(model="mock/echo", messages=MESSAGES)
    response = httpx.post(gw.url + "/v1/chat/completions", json={})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, "body"),
        (b"[1, 2]", 400, "body"),
        (b'{"model": "mock/echo"}', 400, "messages"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "model"),
        (b'{"model": 5, "messages": []}', 400, "model"),
        (b'{"model": "mock/echo", "messages": "hi"}', 400, "messages"),
        (
            b'{"model": "mock/echo", "messages": [{"role": "user", "content": 3}]}',
            400,
            "messages[0].content",
        ),
        (b'{"model": "mock/echo", "messages": [{"content": "x"}]}', 400, "messages[0].role"),
        (
            b'{"model": "mock/echo", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
            400,
            "stream",
        ),
        (
            b'{"model": "mock/echo", "messages": [{"role": "user", "content": "x"}], "n": 0}',
            400,
            "n",
        ),
        (
            b'{"model": "mock/echo", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}',
            400,
            "temperature",
        ),
        (b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}', 404, "model"),
    ],
)
def test_bad_requests_name_the_field(
    make_gateway: GatewayFactory, body: bytes, status: int, param: str
) -> None:
    gw = make_gateway()
    response = httpx.post(
        gw.url + "/v1/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"},
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert set(error) == {"message", "type", "param", "code"}
    assert "Traceback" not in response.text


def test_oversized_body_is_a_413(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(max_body_bytes=1000)
    with pytest.raises(openai.APIStatusError) as caught:
        gw.client().chat.completions.create(
            model="mock/echo", messages=[{"role": "user", "content": "x" * 5000}]
        )
    assert caught.value.status_code == 413
    assert caught.value.body["param"] == "body"  # type: ignore[index]


def test_unknown_routes_and_methods(make_gateway: GatewayFactory) -> None:
    gw = make_gateway()
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert (
        httpx.get(gw.url + "/v1/nothing", headers=headers).json()["error"]["code"] == "unknown_url"
    )
    response = httpx.get(gw.url + "/v1/chat/completions", headers=headers)
    assert response.status_code == 405


def test_upstream_failure_is_a_502_with_its_message(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    gw = make_gateway({"gpt": openai_model(upstream.url)}, router={"retries": 1, "backoff": 0})
    upstream.fake.failures = [(500, "kaput")] * 2
    with pytest.raises(openai.InternalServerError, match="kaput") as caught:
        gw.client().chat.completions.create(model="gpt", messages=MESSAGES)
    assert caught.value.status_code == 502
    upstream.fake.failures = [
        (503, "cold"),
    ]
    raw = gw.client().chat.completions.with_raw_response.create(model="gpt", messages=MESSAGES)
    assert raw.status_code == 200


def test_trace_fields_from_headers_and_metadata(make_gateway: GatewayFactory) -> None:
    gw = make_gateway()
    sink = SpanSink()
    gw.runtime.traces = sink  # type: ignore[assignment]
    gw.client(
        default_headers={
            "x-pilothouse-session": "s-1",
            "x-pilothouse-tags": "beta, checkout",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        }
    ).chat.completions.create(
        model="mock/echo",
        messages=MESSAGES,
        user="u-42",
        metadata={"tags": ["vip"], "feature": "refunds"},
    )
    span = sink.last()
    assert span.session_id == "s-1" and span.user_id == "u-42"
    assert span.tags == ["vip", "beta", "checkout"]
    assert span.attributes["pilothouse.feature"] == "refunds"
    assert span.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert span.parent_span_id == "b7ad6b7169203331"
    assert span.operation == "chat" and span.provider == "mock"
    assert span.request_model == "mock/echo" and span.response_model == "echo"
    assert span.input == MESSAGES and span.output["content"] == "Where is my refund?"
    assert span.project_id == 1 and span.status_code == "ok"
    assert span.attributes["pilothouse.deployment"] == "mock/echo#0"


async def test_client_disconnect_cancels_the_upstream(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    upstream.fake.chunks = 50
    upstream.fake.chunk_delay = 0.05
    gw = make_gateway({"gpt": openai_model(upstream.url)})
    sink = SpanSink()
    gw.runtime.traces = sink  # type: ignore[assignment]
    client = gw.async_client()
    stream = await client.chat.completions.create(model="gpt", messages=MESSAGES, stream=True)
    seen = 0
    async for _chunk in stream:
        seen += 1
        if seen == 4:
            break
    await stream.close()
    await client.close()
    deadline = time.monotonic() + 5
    while (not sink.spans or upstream.fake.disconnects == 0) and time.monotonic() < deadline:  # noqa: ASYNC110 - polls another thread
        await asyncio.sleep(0.02)
    assert upstream.fake.disconnects == 1
    span = sink.spans[-1]
    assert span.attributes["pilothouse.status"] == "cancelled"
    assert span.output_tokens is not None and 3 <= span.output_tokens < 50


def test_rate_limits_answer_429_with_headers(make_gateway: GatewayFactory) -> None:
    gw = make_gateway()
    key, _ = gw.runtime.keys.create(1, "limited", ["gateway"], limits={"rpm": 2})
    client = gw.client(key)
    raw = client.chat.completions.with_raw_response.create(model="mock/echo", messages=MESSAGES)
    assert raw.headers["x-ratelimit-limit-requests"] == "2"
    assert raw.headers["x-ratelimit-remaining-requests"] == "1"
    client.chat.completions.create(model="mock/echo", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="mock/echo", messages=MESSAGES)
    assert int(caught.value.response.headers["retry-after"]) >= 1
    assert caught.value.type == "rate_limit_error"  # type: ignore[attr-defined]
    # Other keys are not affected.
    gw.client().chat.completions.create(model="mock/echo", messages=MESSAGES)


def test_calls_are_written_as_traces(make_gateway: GatewayFactory, upstream: Upstream) -> None:
    from pilothouse.store import traces as trace_store

    gw = make_gateway({"gpt": openai_model(upstream.url)})
    raw = gw.client(
        default_headers={"x-pilothouse-session": "s-9"}
    ).chat.completions.with_raw_response.create(model="gpt", messages=MESSAGES, user="u-9")
    request_id = raw.headers["x-request-id"]
    list(gw.client().chat.completions.create(model="gpt", messages=MESSAGES, stream=True))
    deadline = time.monotonic() + 30
    while True:
        gw.runtime.traces.flush(timeout=5)
        with gw.runtime.db.read() as conn:
            if trace_store.count_spans(conn, 1) >= 2:
                break
        assert time.monotonic() < deadline, "gateway spans were not written"
        time.sleep(0.05)
    with gw.runtime.db.read() as conn:
        query = sa.select(trace_store.spans).where(trace_store.spans.c.project_id == 1)
        found = list(conn.execute(query).mappings())
    by_request = {s["attributes"]["pilothouse.request_id"]: s for s in found}
    span = by_request[request_id]
    assert span["operation"] == "chat" and span["request_model"] == "gpt"
    assert span["response_model"] == "gpt-test" and span["session_id"] == "s-9"
    assert span["user_id"] == "u-9" and span["input_tokens"] == 7 and span["output_tokens"] == 3
    assert any(s["attributes"].get("pilothouse.stream") for s in found)


def test_serves_the_builtin_mock_models_without_a_config(live_server) -> None:  # type: ignore[no-untyped-def]
    client = openai.OpenAI(base_url=live_server.url + "/v1", api_key=ADMIN_KEY, max_retries=0)
    with client:
        assert {m.id for m in client.models.list()} == {"mock/echo", "mock/lorem", "mock/embed"}
        answer = client.chat.completions.create(model="mock/echo", messages=MESSAGES)
        assert answer.choices[0].message.content == "Where is my refund?"
        assert len(client.embeddings.create(model="mock/embed", input="x").data[0].embedding) == 16
