# ruff: noqa: E501
# mypy: disable-error-code="arg-type, call-overload, union-attr, dict-item, index, attr-defined, unused-ignore, assignment"
"""The gateway's hooks: gateway_request, gateway_response and register_providers."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest

from pilothouse.errors import GuardrailBlocked
from pilothouse.gateway.call import Call
from pilothouse.gateway.config import Deployment
from pilothouse.gateway.plugin import gateway_of
from pilothouse.gateway.providers import Provider
from pilothouse.hookspecs import hookimpl, skip_streams
from tests.gateway.conftest import GatewayFactory, SpanSink, Upstream
from tests.gateway.test_app import TOOLS

MESSAGES = [{"role": "user", "content": "hello"}]
MOCK = {"deployments": [{"provider": "mock", "model": "echo"}]}


class PromptPlugin:
    """Renders a ``"prompt": {...}`` reference into messages, as the prompts area does."""

    @hookimpl
    async def gateway_request(self, call: Call) -> None:
        prompt = call.body.pop("prompt", None)
        if prompt is not None:
            call.body["messages"] = [{"role": "user", "content": f"rendered {prompt['name']}"}]
            call.prompt_name = prompt["name"]
            call.prompt_version = 3
        call.metadata["checked"] = True


class Guard:
    @hookimpl
    def gateway_request(self, call: Call) -> None:
        for message in call.body.get("messages", []):
            if "password" in str(message.get("content")):
                raise GuardrailBlocked("the request contains a secret", code="pii_detected")

    @hookimpl
    def gateway_response(self, call: Call, response: dict[str, Any]) -> None:
        for choice in response["choices"]:
            choice["message"]["content"] = choice["message"]["content"].replace("hello", "[hi]")


def test_request_hook_rewrites_the_body(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(plugins=[PromptPlugin()])
    sink = SpanSink()
    gw.runtime.traces = sink  # type: ignore[assignment]
    answer = gw.client().chat.completions.create(
        model="mock/echo",
        messages=[],  # replaced by the hook before validation
        extra_body={"prompt": {"name": "support-reply"}},
    )
    assert answer.choices[0].message.content == "rendered support-reply"
    span = sink.last()
    assert (span.prompt_name, span.prompt_version) == ("support-reply", 3)
    assert span.attributes["pilothouse.checked"] is True


def test_guardrail_blocks_and_response_hook_edits(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(plugins=[Guard()])
    client = gw.client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="mock/echo", messages=[{"role": "user", "content": "my password is x"}]
        )
    assert caught.value.code == "pii_detected"
    answer = client.chat.completions.create(model="mock/echo", messages=MESSAGES)
    assert answer.choices[0].message.content == "[hi]"


class Shouting(Provider):
    name = "shouting"

    async def chat(self, deployment: Deployment, body: dict[str, Any]) -> dict[str, Any]:
        text = body["messages"][-1]["content"].upper()
        return {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": deployment.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }


class ShoutingPlugin:
    @hookimpl
    def register_providers(self, register: Callable[[type[Provider]], None]) -> None:
        register(Shouting)


def test_third_party_provider(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(
        {"loud": {"deployments": [{"provider": "shouting", "model": "v1"}]}},
        plugins=[ShoutingPlugin()],
    )
    answer = gw.client().chat.completions.create(model="loud", messages=MESSAGES)
    assert answer.choices[0].message.content == "HELLO"
    with pytest.raises(openai.BadRequestError, match="does not stream"):
        list(gw.client().chat.completions.create(model="loud", messages=MESSAGES, stream=True))


def test_config_edits_apply_without_restart(make_gateway: GatewayFactory) -> None:
    gw = make_gateway()
    client = gw.client()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="new", messages=MESSAGES)
    gw.write_config({"models": {"new": {"deployments": [{"provider": "mock", "model": "echo"}]}}})
    deadline = time.monotonic() + 10
    while True:  # the file is checked at most once a second
        try:
            client.chat.completions.create(model="new", messages=MESSAGES)
            break
        except openai.NotFoundError:
            assert time.monotonic() < deadline, "config was not reloaded"
            time.sleep(0.1)


class Broken(Provider):
    name = "broken"

    async def chat(self, deployment: Deployment, body: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("bug in a plugin")


class BrokenPlugin:
    @hookimpl
    def register_providers(self, register: Callable[[type[Provider]], None]) -> None:
        register(Broken)


def test_a_plugin_bug_is_a_clean_500(make_gateway: GatewayFactory) -> None:
    gw = make_gateway(
        {"b": {"deployments": [{"provider": "broken", "model": "x"}]}}, plugins=[BrokenPlugin()]
    )
    sink = SpanSink()
    gw.runtime.traces = sink  # type: ignore[assignment]
    with pytest.raises(openai.InternalServerError) as caught:
        gw.client().chat.completions.create(model="b", messages=MESSAGES)
    assert caught.value.status_code == 500
    assert caught.value.body == {  # type: ignore[comparison-overlap]
        "message": "an unexpected error occurred; it has been logged",
        "type": "server_error",
        "param": None,
        "code": "internal_error",
    }
    assert "Traceback" not in caught.value.response.text
    assert sink.last().status_code == "error"


class Recorder:
    """Keeps what ``gateway_response`` sees; a coroutine, as plugins may be."""

    def __init__(self, fail: bool = False) -> None:
        self.seen: list[tuple[bool, dict[str, Any]]] = []
        self.fail = fail

    def wait(self, count: int) -> None:
        """Until ``count`` answers were seen (after a stream the hook runs after [DONE])."""
        deadline = time.monotonic() + 5
        while len(self.seen) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.seen) == count

    @hookimpl
    async def gateway_response(self, call: Call, response: dict[str, Any]) -> None:
        self.seen.append((call.stream, copy.deepcopy(response)))
        call.metadata["reviewed"] = True
        if self.fail:
            raise GuardrailBlocked("too late to block a stream")


def ask(client: openai.OpenAI, streams: tuple[bool, ...]) -> None:
    """The same chat question once per entry of ``streams``, streamed or not, read whole."""
    for stream in streams:
        answer = client.chat.completions.create(model="mock/echo", messages=MESSAGES, stream=stream)
        if stream:
            list(answer)


def _shape(response: dict[str, Any]) -> Any:
    """The response without what differs between two answers (ids, times)."""
    return {k: v for k, v in response.items() if k not in ("id", "created", "system_fingerprint")}


def test_streamed_answers_reach_the_response_hook_once(
    make_gateway: GatewayFactory, upstream: Upstream
) -> None:
    recorder = Recorder()
    claude = {"deployments": [{"provider": "anthropic", "model": "c", "base_url": upstream.url}]}
    gw = make_gateway({"mock/echo": MOCK, "claude": claude}, plugins=[recorder])
    sink = SpanSink()
    gw.runtime.traces = sink  # type: ignore[assignment]
    client = gw.client()
    ask(client, streams=(False, True))
    recorder.wait(2)
    assert [s for s, _ in recorder.seen] == [False, True]
    (_, whole), (_, streamed) = recorder.seen
    assert _shape(streamed) == _shape(whole)
    assert streamed["choices"][0]["message"]["content"] == "hello"
    assert streamed["usage"]["completion_tokens"] > 0
    assert sink.last(2).attributes["pilothouse.reviewed"] is True  # recorded on the trace too
    # Tool calls are assembled from their deltas.
    list(
        client.chat.completions.create(model="claude", messages=MESSAGES, tools=TOOLS, stream=True)
    )
    recorder.wait(3)
    message = recorder.seen[-1][1]["choices"][0]["message"]
    assert message["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }
    assert recorder.seen[-1][1]["choices"][0]["finish_reason"] == "tool_calls"


def test_response_hook_failing_after_a_stream_leaves_the_stream_whole(
    make_gateway: GatewayFactory,
) -> None:
    recorder = Recorder(fail=True)
    gw = make_gateway(plugins=[recorder])
    chunks = list(
        gw.client().chat.completions.create(model="mock/echo", messages=MESSAGES, stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello"
    recorder.wait(1)  # the hook runs after [DONE] was sent; its error is logged
    with pytest.raises(openai.BadRequestError):  # while a complete answer it can still refuse
        gw.client().chat.completions.create(model="mock/echo", messages=MESSAGES)


class CompleteAnswersOnly:
    """A ``gateway_response`` hook that opts out of streamed answers."""

    def __init__(self) -> None:
        self.seen: list[bool] = []

    @hookimpl
    @skip_streams
    def gateway_response(self, call: Call, response: dict[str, Any]) -> None:
        self.seen.append(call.stream)


def test_a_response_hook_may_skip_streamed_answers(make_gateway: GatewayFactory) -> None:
    only_complete, recorder = CompleteAnswersOnly(), Recorder()
    gw = make_gateway(plugins=[only_complete, recorder])
    client = gw.client()
    ask(client, streams=(True, False))
    recorder.wait(2)
    assert [s for s, _ in recorder.seen] == [True, False]  # the other hook still gets both
    assert only_complete.seen == [False]
    # The built-in hooks (guardrails) skip streams too: alone, they need no assembled answer.
    assert gateway_of(make_gateway().runtime).app.stream_review() is None


class StreamEditor(Recorder):
    """Edits streamed answers in place (or refuses them): the cache stores what it left."""

    @hookimpl
    async def gateway_response(self, call: Call, response: dict[str, Any]) -> None:
        self.seen.append((call.stream, response))
        if call.stream and self.fail:
            raise GuardrailBlocked("not worth caching")
        if call.stream:
            response["choices"][0]["message"]["content"] = "[reviewed]"


def test_the_cache_stores_the_streamed_answer_the_hooks_saw(
    make_gateway: GatewayFactory,
) -> None:
    editor = StreamEditor()
    gw = make_gateway(plugins=[editor])
    client = gw.client(default_headers={"x-pilothouse-cache": "on"})
    chunks = list(client.chat.completions.create(model="mock/echo", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello"
    editor.wait(1)
    cache = gw.runtime.state["gateway"].accounting.cache
    deadline = time.monotonic() + 5
    while not len(cache) and time.monotonic() < deadline:
        time.sleep(0.01)
    hit = client.chat.completions.with_raw_response.create(model="mock/echo", messages=MESSAGES)
    assert hit.headers["x-pilothouse-cache"] == "hit"
    assert hit.parse().choices[0].message.content == "[reviewed]"
    # A hook that refuses a streamed answer keeps it out of the cache.
    refusing = StreamEditor(fail=True)
    gw = make_gateway(plugins=[refusing])
    client = gw.client(default_headers={"x-pilothouse-cache": "on"})
    list(client.chat.completions.create(model="mock/echo", messages=MESSAGES, stream=True))
    refusing.wait(1)
    again = client.chat.completions.with_raw_response.create(model="mock/echo", messages=MESSAGES)
    assert again.headers["x-pilothouse-cache"] == "miss"
