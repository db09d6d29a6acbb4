"""The gateway renders a referenced prompt server-side (official ``openai`` client, real socket)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from pilothouse.app import create_app
from pilothouse.prompts.api import registry_of
from pilothouse.runtime import Runtime
from tests.conftest import ADMIN_KEY, LiveServer, make_settings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PROMPT_TABLES = re.compile(r"\b(prompts|prompt_versions|prompt_labels)\b")


class Served:
    def __init__(self, runtime: Runtime, url: str) -> None:
        self.runtime = runtime
        self.url = url
        self.api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        self.openai = openai.OpenAI(base_url=url + "/v1", api_key=ADMIN_KEY, max_retries=0)

    def trace_span(self, trace_id: str) -> dict[str, Any]:
        """The gateway's span of a trace, once the writer has stored it (bounded wait)."""
        deadline = time.monotonic() + 10
        while True:
            self.runtime.traces.flush(timeout=5)
            found = self.api.get(f"/api/traces/{trace_id}")
            if found.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert found.status_code == 200, found.text
        spans: list[dict[str, Any]] = found.json()["spans"]
        return spans[0]


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[Served]:
    config = tmp_path / "pilothouse.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "models": {
                    "mock/echo": {"deployments": [{"provider": "mock", "model": "echo"}]},
                    "mock/other": {"deployments": [{"provider": "mock", "model": "echo"}]},
                }
            }
        )
    )
    runtime = Runtime(make_settings(tmp_path, database_url, gateway_config=str(config)))
    runtime.migrate()
    runtime.bootstrap()
    try:
        with LiveServer(create_app(runtime)) as server:
            served = Served(runtime, server.url)
            yield served
            served.api.close()
            served.openai.close()
    finally:
        runtime.db.close()


def test_chat_completion_renders_a_referenced_prompt(served: Served):
    created = served.api.post(
        "/api/prompts",
        json={
            "name": "support/refund-reply",
            "type": "chat",
            "template": [
                {"role": "system", "content": "You handle refunds for {{shop}}."},
                {"placeholder": "history"},
                {"role": "user", "content": "Customer {{customer}} asks: {{question}}"},
            ],
            "config": {"model": "mock/echo", "max_tokens": 4, "temperature": 0.2},
            "labels": ["production"],
        },
    )
    assert created.status_code == 201, created.text

    variables = {"shop": "Lamps", "customer": "Ada", "question": "where is my refund?"}
    answer = served.openai.chat.completions.create(
        model="",  # empty: the prompt's model config applies
        messages=[],
        extra_body={
            "prompt": {
                "name": "support/refund-reply",
                "label": "production",
                "variables": {**variables, "history": [{"role": "assistant", "content": "Hello!"}]},
            },
        },
        extra_headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
    )
    # The mock model echoes the last user message, cut to max_tokens (4) from the prompt config.
    assert answer.choices[0].message.content == "Customer Ada asks: where"
    assert answer.model.startswith("mock") or answer.model == "echo"

    span = served.trace_span(TRACE_ID)
    assert (span["prompt_name"], span["prompt_version"]) == ("support/refund-reply", 1)
    assert span["request_model"] == "mock/echo"
    assert span["input"] is None or "You handle refunds for Lamps." in str(span["input"])

    # A new version moved to production is used by the next request (cache invalidated).
    served.api.post(
        "/api/prompts/support/refund-reply/versions",
        json={
            "template": [{"role": "user", "content": "v2 for {{customer}}: {{question}}"}],
            "config": {"model": "mock/echo"},
            "labels": ["production"],
        },
    ).raise_for_status()
    second = served.openai.chat.completions.create(
        model="mock/other",  # the request's own model and max_tokens win over the prompt's
        max_tokens=3,
        messages=[{"role": "user", "content": "and my other order?"}],
        extra_body={"prompt": {"name": "support/refund-reply", "variables": variables}},
        extra_headers={"traceparent": f"00-{'1' * 32}-00f067aa0ba902b7-01"},
    )
    # The request's messages come after the prompt's: the last user message is the request's.
    assert second.choices[0].message.content == "and my other"
    span = served.trace_span("1" * 32)
    assert (span["prompt_name"], span["prompt_version"]) == ("support/refund-reply", 2)
    assert span["request_model"] == "mock/other"

    # Pinned version.
    third = served.openai.chat.completions.create(
        model="",
        messages=[],
        extra_body={
            "prompt": {
                "name": "support/refund-reply",
                "version": 1,
                "variables": {**variables, "history": []},
            }
        },
    )
    assert third.choices[0].message.content == "Customer Ada asks: where"


def test_warm_prompts_render_without_the_database(served: Served):
    served.api.post(
        "/api/prompts",
        json={
            "name": "hello",
            "type": "text",
            "template": "Say hi to {{name}}",
            "config": {"model": "mock/echo"},
            "labels": ["production"],
        },
    ).raise_for_status()
    ask = {"prompt": {"name": "hello", "variables": {"name": "Bo"}}}
    first = served.openai.chat.completions.create(model="", messages=[], extra_body=ask)
    assert first.choices[0].message.content == "Say hi to Bo"
    registry = registry_of(served.runtime)
    assert registry.cached(1, "hello", "production") is not None
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    from sqlalchemy import event

    event.listen(served.runtime.db.engine, "before_cursor_execute", count)
    try:
        again = served.openai.chat.completions.create(model="", messages=[], extra_body=ask)
    finally:
        event.remove(served.runtime.db.engine, "before_cursor_execute", count)
    assert again.choices[0].message.content == "Say hi to Bo"
    registry_reads = [s for s in statements if PROMPT_TABLES.search(s)]
    assert registry_reads == []


def test_bad_prompt_references_are_openai_errors(served: Served):
    with pytest.raises(openai.NotFoundError) as unknown:
        served.openai.chat.completions.create(
            model="mock/echo", messages=[], extra_body={"prompt": {"name": "nope"}}
        )
    assert "prompt 'nope' not found" in str(unknown.value)

    served.api.post(
        "/api/prompts",
        json={"name": "p", "type": "text", "template": "{{a}} {{b}}", "labels": ["production"]},
    ).raise_for_status()
    with pytest.raises(openai.BadRequestError) as missing:
        served.openai.chat.completions.create(
            model="mock/echo", messages=[], extra_body={"prompt": {"name": "p", "variables": {}}}
        )
    assert "missing variables: a, b" in str(missing.value)
    with pytest.raises(openai.NotFoundError) as label:
        served.openai.chat.completions.create(
            model="mock/echo", messages=[], extra_body={"prompt": {"name": "p", "label": "gold"}}
        )
    assert "label 'gold' not found" in str(label.value)
    with pytest.raises(openai.BadRequestError) as shape:
        served.openai.chat.completions.create(
            model="mock/echo", messages=[], extra_body={"prompt": {"name": "p", "oops": 1}}
        )
    assert shape.value.body["param"] == "prompt.oops"  # type: ignore[index]


def test_other_hooks_see_the_rendered_messages(tmp_path: Path, database_url: str):
    """Hooks marked trylast (like guardrails) run after the prompt is rendered, so they check
    what the model will get."""
    from pilothouse.hookspecs import hookimpl
    from pilothouse.plugins import make_plugin_manager

    seen: list[Any] = []

    class Recorder:
        @hookimpl(trylast=True)
        async def gateway_request(self, call: Any) -> None:
            seen.append(list(call.body["messages"]))

    config = tmp_path / "pilothouse.yaml"
    config.write_text(
        yaml.safe_dump(
            {"models": {"mock/echo": {"deployments": [{"provider": "mock", "model": "echo"}]}}}
        )
    )
    manager = make_plugin_manager(load_entry_points=False)
    manager.register(Recorder())
    settings = make_settings(tmp_path, database_url, gateway_config=str(config))
    runtime = Runtime(settings, plugins=manager)
    runtime.migrate()
    runtime.bootstrap()
    try:
        with LiveServer(create_app(runtime)) as server:
            served = Served(runtime, server.url)
            served.api.post(
                "/api/prompts",
                json={
                    "name": "t",
                    "type": "text",
                    "template": "Hi {{n}}",
                    "labels": ["production"],
                },
            ).raise_for_status()
            served.openai.chat.completions.create(
                model="mock/echo",
                messages=[],
                extra_body={"prompt": {"name": "t", "variables": {"n": "Bo"}}},
            )
            served.api.close()
            served.openai.close()
    finally:
        runtime.db.close()
    assert seen == [[{"role": "user", "content": "Hi Bo"}]]
