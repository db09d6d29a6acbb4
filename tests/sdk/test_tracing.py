"""The tracing SDK end to end: decorators, context managers and the openai wrapper, exported
with the OTLP/HTTP exporter to a live server and read back through the query API."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletionMessageParam

from pilothouse.sdk import tracing as sdk
from tests.conftest import ADMIN_KEY, LiveServer


@pytest.fixture
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    sdk.configure(base_url=live_server.url, api_key=ADMIN_KEY, service_name="sdk-test")
    with httpx.Client(
        base_url=live_server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    ) as client:
        yield client
    sdk.uninstrument_openai()
    sdk.flush()


def tree(api: httpx.Client, trace_id: str) -> dict[str, Any]:
    assert sdk.flush()
    response = api.get(f"/api/traces/{trace_id}")
    assert response.status_code == 200, response.text
    trace: dict[str, Any] = response.json()
    return trace


@sdk.observe(kind="tool")
def lookup(order: int) -> dict[str, Any]:
    return {"order": order, "status": "shipped"}


@sdk.observe()
def words(n: int) -> Iterator[str]:
    for i in range(n):
        yield f"w{i} "


@sdk.observe(kind="agent")
async def agent(question: str) -> str:
    await asyncio.gather(step("a"), step("b"))
    return "done"


@sdk.observe()
async def step(name: str) -> str:
    await asyncio.sleep(0)
    return name


def test_nesting_inputs_outputs_and_trace_fields(api: httpx.Client):
    with sdk.trace("support", input="where is 42?", session_id="c-1", user_id="u-1") as root:
        sdk.set_trace(tags=["sdk"], prompt_name="support", prompt_version=3)
        assert lookup(42)["status"] == "shipped"
        assert "".join(words(3)) == "w0 w1 w2 "
        with sdk.span("retrieve", kind="retrieval", input="refund") as retrieval:
            retrieval.set_output(["doc 1"])
        root.set_output("it shipped")
    trace = tree(api, root.trace_id)
    assert (trace["name"], trace["session_id"], trace["user_id"]) == ("support", "c-1", "u-1")
    assert trace["tags"] == ["sdk"] and trace["prompt_version"] == 3
    assert (trace["input"], trace["output"]) == ("where is 42?", "it shipped")
    assert trace["service_name"] == "sdk-test"
    [top] = trace["spans"]
    children = {c["name"]: c for c in top["children"]}
    assert children["lookup"]["operation"] == "tool"
    assert children["lookup"]["input"] == '{"order":42}'
    assert children["lookup"]["output"] == '{"order":42,"status":"shipped"}'
    assert children["words"]["output"] == "w0 w1 w2 "
    assert children["retrieve"]["operation"] == "retrieval"


def test_errors_are_recorded(api: httpx.Client):
    @sdk.observe()
    def broken() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError), sdk.trace("failing") as root:
        broken()
    trace = tree(api, root.trace_id)
    assert trace["status"] == "error" and trace["error_count"] == 2
    [top] = trace["spans"]
    assert top["children"][0]["status_message"] == "RuntimeError: boom"


async def test_async_children_across_tasks_nest_under_their_parent(api: httpx.Client):
    async with sdk.trace("async root") as root:
        assert await agent("q") == "done"
    trace = tree(api, root.trace_id)
    [top] = trace["spans"]
    [agent_span] = top["children"]
    assert agent_span["operation"] == "agent"
    assert sorted(c["name"] for c in agent_span["children"]) == ["step", "step"]


def test_openai_wrapper_records_chat_stream_and_embeddings(
    api: httpx.Client, live_server: LiveServer
):
    sdk.instrument_openai()
    client = OpenAI(base_url=f"{live_server.url}/v1", api_key=ADMIN_KEY)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]
    with sdk.trace("openai flow") as root:
        answer = client.chat.completions.create(model="mock/echo", messages=messages)
        assert answer.choices[0].message.content
        stream = client.chat.completions.create(
            model="mock/echo",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        client.embeddings.create(model="mock/embed", input="vector me")
        sdk.score("helpful", True, comment="nice")
    trace = tree(api, root.trace_id)
    [top] = trace["spans"]
    chat, streaming, embedding = sorted(top["children"], key=lambda s: s["start_time"])
    assert chat["operation"] == "chat" and chat["provider"] == "openai"
    assert chat["request_model"] == "mock/echo"
    assert chat["input"] == [{"role": "user", "content": "hello there"}]
    assert chat["output"][0]["content"] == answer.choices[0].message.content
    assert chat["input_tokens"] and chat["output_tokens"]
    assert streaming["output"] == [{"role": "assistant", "content": streamed}]
    assert streaming["ttft_ms"] is not None and streaming["ttft_ms"] >= 0
    assert embedding["operation"] == "embeddings" and embedding["request_model"] == "mock/embed"
    assert [(s["name"], s["value"], s["source"]) for s in trace["scores"]] == [
        ("helpful", 1.0, "sdk")
    ]


async def test_async_openai_client(api: httpx.Client, live_server: LiveServer):
    sdk.instrument_openai()
    client = AsyncOpenAI(base_url=f"{live_server.url}/v1", api_key=ADMIN_KEY)
    async with sdk.trace("async openai") as root:
        await client.chat.completions.create(
            model="mock/echo",
            messages=[{"role": "user", "content": "hi"}],
        )
    await client.close()
    trace = tree(api, root.trace_id)
    assert trace["spans"][0]["children"][0]["operation"] == "chat"


def test_the_sdk_package_re_exports_tracing():
    import pilothouse.sdk

    assert pilothouse.sdk.observe is sdk.observe
    assert pilothouse.sdk.instrument_openai is sdk.instrument_openai
    with pytest.raises(AttributeError):
        _ = pilothouse.sdk.nothing_here
