# ruff: noqa: E501
# mypy: disable-error-code="arg-type, call-overload, union-attr, dict-item, index, attr-defined, unused-ignore, assignment"
"""Gateway fixtures: a scriptable upstream on a real socket and a gateway in front of it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from pilothouse.app import create_app
from pilothouse.plugins import make_plugin_manager
from pilothouse.runtime import Runtime
from pilothouse.tracing.model import Span
from tests.conftest import ADMIN_KEY, LiveServer, make_settings
from tests.gateway.fakes import FakeUpstream


@dataclass
class Upstream:
    fake: FakeUpstream
    url: str


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A fake OpenAI/Anthropic upstream on a real socket."""
    fake = FakeUpstream()
    with LiveServer(fake) as server:
        yield Upstream(fake, server.url)


class SpanSink:
    """Collects the spans the gateway submits (stands in for runtime.traces in unit tests)."""

    def __init__(self) -> None:
        self.spans: list[Span] = []

    def submit(self, spans: list[Span]) -> None:
        self.spans.extend(spans)

    def close(self, timeout: float = 0) -> None:
        pass

    def last(self, count: int = 1, timeout: float = 5.0) -> Span:
        """The latest span once ``count`` arrived (spans are submitted after the answer)."""
        deadline = time.monotonic() + timeout
        while len(self.spans) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.spans) >= count, f"{len(self.spans)} spans, expected {count}"
        return self.spans[-1]


@dataclass
class Gateway:
    runtime: Runtime
    url: str
    config_path: Path
    stack: contextlib.ExitStack

    def client(self, key: str = ADMIN_KEY, **kwargs: Any) -> openai.OpenAI:
        client = openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, **kwargs)
        self.stack.callback(client.close)
        return client

    def async_client(self, key: str = ADMIN_KEY, **kwargs: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, **kwargs)

    def write_config(self, doc: dict[str, Any]) -> None:
        self.config_path.write_text(yaml.safe_dump(doc))


def openai_model(url: str, model: str = "gpt-test", **extra: Any) -> dict[str, Any]:
    """A config entry for one deployment on the fake upstream."""
    return {
        "deployments": [{"provider": "openai", "model": model, "base_url": url + "/v1", **extra}]
    }


GatewayFactory = Callable[..., Gateway]


@pytest.fixture
def make_gateway(tmp_path: Path, database_url: str) -> Iterator[GatewayFactory]:
    """Start the whole app on a real socket with a given gateway config (models mapping)."""
    stack = contextlib.ExitStack()

    def start(
        models: dict[str, Any] | None = None,
        router: dict[str, Any] | None = None,
        plugins: list[object] = (),  # type: ignore[assignment]
        **settings: Any,
    ) -> Gateway:
        path = tmp_path / "pilothouse.yaml"
        doc: dict[str, Any] = {
            "models": models
            or {"mock/echo": {"deployments": [{"provider": "mock", "model": "echo"}]}}
        }
        if router:
            doc["router"] = router
        path.write_text(yaml.safe_dump(doc))
        values = {"gateway_config": str(path), **settings}
        manager = None
        if plugins:
            manager = make_plugin_manager(load_entry_points=False)
            for plugin in plugins:
                manager.register(plugin)
        runtime = Runtime(make_settings(tmp_path, database_url, **values), plugins=manager)
        runtime.migrate()
        runtime.bootstrap()
        stack.callback(runtime.db.close)
        server = stack.enter_context(LiveServer(create_app(runtime)))
        return Gateway(runtime, server.url, path, stack)

    with stack:
        yield start
