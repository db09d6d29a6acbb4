"""The SDK: get_prompt over HTTP with an in-process cache, stale-while-revalidate, fallback."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import pilothouse.sdk.prompts as sdk
from pilothouse.errors import NotFound, Unavailable
from pilothouse.prompts.client import PromptsClient
from tests.conftest import ADMIN_KEY, LiveServer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def seed(url: str) -> PromptsClient:
    client = PromptsClient(url, ADMIN_KEY)
    client.create({"name": "tone", "type": "text", "template": "kindly", "labels": ["production"]})
    client.create(
        {
            "name": "support/reply",
            "type": "chat",
            "template": [
                {"role": "system", "content": "Answer {{> tone@production}}."},
                {"placeholder": "history"},
                {"role": "user", "content": "{{question}}"},
            ],
            "config": {"model": "mock-small", "temperature": 0.3},
            "labels": ["production"],
        }
    )
    return client


def test_get_prompt_renders_locally_with_includes(live_server: LiveServer):
    seed(live_server.url).close()
    prompts = sdk.Prompts(live_server.url, ADMIN_KEY)
    try:
        prompt = prompts.get("support/reply")
        assert (prompt.name, prompt.version, prompt.type) == ("support/reply", 1, "chat")
        assert prompt.config == {"model": "mock-small", "temperature": 0.3}
        assert prompt.labels == ("latest", "production")
        messages = prompt.to_openai_messages(history=[], question="Why?")
        assert messages == [
            {"role": "system", "content": "Answer kindly."},
            {"role": "user", "content": "Why?"},
        ]
        assert prompt.render(history=[], question="Why?") == messages
        with pytest.raises(NotFound, match="label 'gold' not found"):
            prompts.get("support/reply", label="gold", fallback="never used for a 404")
        assert prompts.get("tone", version=1).render() == "kindly"
    finally:
        prompts.close()


def test_cache_ttl_refresh_and_server_down(runtime):
    from pilothouse.app import create_app

    clock = Clock()
    server = LiveServer(create_app(runtime))
    with server:
        client = seed(server.url)
        prompts = sdk.Prompts(server.url, ADMIN_KEY, ttl=60, clock=clock)
        first = prompts.get("support/reply")
        assert first.version == 1
        assert prompts.get("support/reply") is first  # a cache hit, no request

        saved = client.save_version(
            "support/reply",
            {
                "template": [{"role": "user", "content": "v2 {{question}}"}],
                "labels": ["production"],
            },
        )
        assert saved["version"]["version"] == 2
        assert prompts.get("support/reply") is first  # still fresh: served from cache

        clock.now += 61  # past the TTL: the stale copy comes back at once ...
        assert prompts.get("support/reply") is first
        prompts.wait_for_refreshes()  # ... while a background refresh fetches version 2
        assert prompts.get("support/reply").version == 2
        client.close()

    # The server is gone: the cached copy keeps being served, also after its TTL.
    clock.now += 120
    cached = prompts.get("support/reply")
    assert cached.version == 2
    prompts.wait_for_refreshes()
    assert isinstance(prompts.last_error, Unavailable)
    assert prompts.get("support/reply").version == 2

    # Nothing cached: the caller's fallback, or Unavailable without one.
    fallback = prompts.get("other", fallback="Hello {{name}}")
    assert (fallback.source, fallback.version) == ("fallback", 0)
    assert fallback.render(name="Ada") == "Hello Ada"
    chat = prompts.get("chat", fallback=[{"role": "system", "content": "Be {{x}}"}])
    assert chat.to_openai_messages(x="brief") == [{"role": "system", "content": "Be brief"}]
    with pytest.raises(Unavailable, match="cannot reach"):
        prompts.get("nothing")
    prompts.close()


def test_render_links_the_prompt_version_to_the_current_span():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    prompt = sdk.Prompt(name="p", version=3, type="text", template="Hi {{n}}")
    with provider.get_tracer("test").start_as_current_span("llm"):
        assert prompt.render(n="Ada") == "Hi Ada"
    (span,) = exporter.get_finished_spans()
    assert span.attributes == {"pilothouse.prompt.name": "p", "pilothouse.prompt.version": 3}
    assert trace.get_current_span().is_recording() is False


def test_module_level_get_prompt(live_server: LiveServer, monkeypatch: pytest.MonkeyPatch):
    seed(live_server.url).close()
    monkeypatch.setattr(sdk, "_default", None)
    monkeypatch.setenv("PILOTHOUSE_URL", live_server.url)
    monkeypatch.setenv("PILOTHOUSE_API_KEY", ADMIN_KEY)
    try:
        assert sdk.get_prompt("tone").render() == "kindly"
        configured = sdk.configure(live_server.url, ADMIN_KEY, ttl=5)
        assert sdk.get_prompt("tone", version=1).version == 1
        assert configured.ttl == 5
    finally:
        if sdk._default is not None:
            sdk._default.close()
