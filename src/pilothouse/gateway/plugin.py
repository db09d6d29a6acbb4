"""The gateway as a built-in plugin: providers, the ``/v1`` mount, startup and shutdown."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.from_thread
from starlette.routing import Mount

from pilothouse.errors import ConfigError
from pilothouse.gateway.app import GatewayApp
from pilothouse.gateway.config import ConfigSource
from pilothouse.gateway.http import Upstream, make_upstream
from pilothouse.gateway.providers.anthropic import AnthropicProvider
from pilothouse.gateway.providers.base import Provider
from pilothouse.gateway.providers.mock import MockProvider
from pilothouse.gateway.providers.openai import OpenAIProvider
from pilothouse.gateway.router import Router
from pilothouse.hookspecs import hookimpl

if TYPE_CHECKING:
    import click

    from pilothouse.runtime import Runtime

log = logging.getLogger(__name__)

STATE_KEY = "gateway"


class Gateway:
    """Everything the gateway keeps for the life of the process."""

    def __init__(self, runtime: Runtime, upstream: Upstream | None = None) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.upstream = upstream or make_upstream(
            settings.gateway_max_connections, settings.gateway_http_client
        )
        classes: list[type[Provider]] = []
        runtime.plugins.hook.register_providers(register=classes.append)
        self.providers = {cls.name: cls(self.upstream) for cls in classes}
        path = Path(settings.gateway_config) if settings.gateway_config else None
        if path is not None and not path.exists():
            raise ConfigError(f"PILOTHOUSE_GATEWAY_CONFIG={path}: file not found")
        self.source = ConfigSource(path, set(self.providers))
        self.router = Router(self.source, self.providers)
        self.accounting = make_accounting(runtime)
        self.app = GatewayApp(runtime, self.router, self.accounting)

    async def start(self) -> None:
        if self.accounting is not None:
            await self.accounting.start()
        freeze_startup_heap()

    async def stop(self) -> None:
        if self.accounting is not None:
            await self.accounting.stop()
        await self.upstream.aclose()


_frozen = False


def freeze_startup_heap() -> None:
    """Once per process: keep the objects loaded at startup out of full collections.

    Frameworks, ORM metadata and price tables live as long as the process; a full collection
    of a heap this size takes hundreds of milliseconds on the benchmark machine, stalling
    every request in flight (the gateway's p99). ``gc.freeze`` leaves them to reference
    counting alone.
    """
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def make_accounting(runtime: Runtime) -> Any:
    """Limits, budgets, cost, spend, cache and metrics, when their modules are installed."""
    try:
        from pilothouse.gateway.accounting import Accounting
    except ImportError:
        return None
    return Accounting(runtime)


def gateway_of(runtime: Runtime) -> Gateway:
    """The runtime's gateway, created on first use."""
    found = runtime.state.get(STATE_KEY)
    if found is None:
        found = runtime.state[STATE_KEY] = Gateway(runtime)
    assert isinstance(found, Gateway)
    return found


def _in_loop(func: Callable[[], Any]) -> None:
    """Run a coroutine function on the server's event loop from a lifespan worker thread."""
    try:
        anyio.from_thread.run(func)
    except RuntimeError:
        # Not called from a worker thread of a running loop (e.g. a script): run it here.
        asyncio.run(func())


@hookimpl
def register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(OpenAIProvider)
    register(AnthropicProvider)
    register(MockProvider)


@hookimpl
def register_commands(cli: click.Group) -> None:
    from pilothouse.cli.gateway import gateway

    cli.add_command(gateway)


@hookimpl
def asgi_routes(runtime: Runtime) -> list[Any]:
    return [Mount("/v1", app=gateway_of(runtime).app)]


@hookimpl
def asgi_hot_paths(runtime: Runtime) -> dict[str, Any]:
    app = gateway_of(runtime).app
    return {path: app for path in app.routes}


@hookimpl
def startup(runtime: Runtime) -> None:
    _in_loop(gateway_of(runtime).start)


@hookimpl
def shutdown(runtime: Runtime) -> None:
    gateway = runtime.state.get(STATE_KEY)
    if isinstance(gateway, Gateway):
        _in_loop(gateway.stop)
