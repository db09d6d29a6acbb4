"""The prompt registry as a built-in plugin: API routes, CLI commands, gateway rendering."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from pilothouse.errors import BadRequest
from pilothouse.hookspecs import hookimpl
from pilothouse.prompts.api import registry_of, router
from pilothouse.prompts.registry import Resolved

if TYPE_CHECKING:
    import click

    from pilothouse.gateway.call import Call
    from pilothouse.runtime import Runtime

#: The request fields a prompt reference may carry.
REFERENCE_FIELDS = frozenset({"name", "label", "version", "variables"})


@hookimpl
def startup(runtime: Runtime) -> None:
    registry_of(runtime)


@hookimpl
def asgi_routes(runtime: Runtime) -> list[Any]:
    return list(router.routes)


@hookimpl
def register_commands(cli: click.Group) -> None:
    from pilothouse.prompts.cli import prompts

    cli.add_command(prompts)


def invalid(param: str, reason: str) -> BadRequest:
    return BadRequest(f"{param}: {reason}", param=param, code="invalid_prompt_reference")


def _reference(raw: Any) -> tuple[str, str | None, int | None, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise invalid("prompt", "expected an object with name, label or version, and variables")
    unknown = set(raw) - REFERENCE_FIELDS
    if unknown:
        raise invalid(f"prompt.{sorted(unknown)[0]}", "unknown field")
    name, label, version = raw.get("name"), raw.get("label"), raw.get("version")
    variables = raw.get("variables", {})
    if not isinstance(name, str) or not name:
        raise invalid("prompt.name", "expected the name of a prompt")
    if label is not None and not isinstance(label, str):
        raise invalid("prompt.label", "expected a label name")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise invalid("prompt.version", "expected a version number")
    if label is not None and version is not None:
        raise invalid("prompt.version", "give a label or a version, not both")
    if not isinstance(variables, dict):
        raise invalid("prompt.variables", "expected an object")
    if label is None and version is None:
        label = "production"
    return name, label, version, variables


def apply(call: Call, resolved: Resolved, variables: dict[str, Any]) -> None:
    """Render the prompt into ``call.body``: its messages first, then the request's; its model
    config wherever the request leaves a field out (a ``model`` of ``""`` counts as left out)."""
    body = call.body
    rendered = resolved.render(variables)
    extra = body.get("messages") or []
    if not isinstance(extra, list):
        raise invalid("messages", "expected an array of messages")
    body["messages"] = [*rendered.messages, *extra]
    for key, value in resolved.config.items():
        if body.get(key) in (None, "") if key == "model" else key not in body:
            body[key] = value
    call.prompt_name = resolved.name
    call.prompt_version = resolved.version
    call.metadata["prompt_ref"] = f"{resolved.name}@{resolved.version}"


class _Later:
    """An awaitable whose coroutine is made only when awaited: if another hook raises before
    the gateway awaits this one, no coroutine is left un-awaited."""

    def __init__(self, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.factory = factory

    def __await__(self) -> Generator[Any, None, None]:
        return self.factory().__await__()


@hookimpl
def gateway_request(call: Call) -> Awaitable[None] | None:
    """Render ``"prompt": {"name", "label" | "version", "variables"}`` of a chat request.

    The work happens when the gateway awaits the returned object, in hook order, so that
    plugins marked ``trylast`` (guardrails) see the rendered messages. A warm prompt renders
    from memory; a cold one is read from the database off the event loop."""
    if call.operation != "chat" or "prompt" not in call.body:
        return None
    return _Later(lambda: _render_reference(call))


async def _render_reference(call: Call) -> None:
    if "prompt" not in call.body:  # another plugin handled it first
        return
    name, label, version, variables = _reference(call.body.pop("prompt"))
    registry = registry_of(call.runtime)
    project_id = call.api_key.project_id
    resolved = registry.cached(project_id, name, label, version)
    if resolved is None:
        resolved = await anyio.to_thread.run_sync(
            registry.resolve, project_id, name, label, version
        )
    apply(call, resolved, variables)
