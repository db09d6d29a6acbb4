"""Plugin hooks. Built-in features register through these same hooks as third-party plugins.

A plugin is a module or object with functions marked ``@pilothouse.hookimpl``, published under
the ``pilothouse`` entry-point group (``[project.entry-points.pilothouse]``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

if TYPE_CHECKING:
    import click

    from pilothouse.evals.evaluators import Evaluator
    from pilothouse.gateway.call import Call
    from pilothouse.gateway.providers import Provider
    from pilothouse.guardrails.model import Check as GuardrailCheck
    from pilothouse.jobs import JobSpec
    from pilothouse.runtime import Runtime

hookspec = pluggy.HookspecMarker("pilothouse")
hookimpl = pluggy.HookimplMarker("pilothouse")

F = TypeVar("F", bound=Callable[..., Any])

#: The attribute :func:`skip_streams` sets on a hook implementation.
SKIP_STREAMS = "pilothouse_skip_streams"


def skip_streams(impl: F) -> F:
    """Mark a ``gateway_response`` implementation that has no use for streamed answers.

    The gateway then does not call it after a stream, and when no implementation wants
    streamed answers it does not keep a stream's chunks to assemble one.
    """
    setattr(impl, SKIP_STREAMS, True)
    return impl


@hookspec
def register_jobs(register: Callable[[JobSpec], None]) -> None:
    """Register background jobs: call ``register(JobSpec(...))`` for each."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands or command groups to the ``pilothouse`` CLI."""


@hookspec
def startup(runtime: Runtime) -> None:
    """Called once the runtime (settings, database, jobs) is ready, before serving."""


@hookspec
def shutdown(runtime: Runtime) -> None:
    """Called when the server stops, before background writers are flushed and closed."""


@hookspec
def asgi_routes(runtime: Runtime) -> list[Any]:  # type: ignore[empty-body]
    """Return Starlette routes or mounts to add to the server (e.g. ``Mount('/v1', app)``)."""


@hookspec
def asgi_hot_paths(runtime: Runtime) -> dict[str, Any]:  # type: ignore[empty-body]
    """Return ``{exact_path: asgi_app}`` for request paths that must be fast (the gateway's
    ``/v1/chat/completions``...): they skip the API's middleware and route matching, so the
    app answers every error itself, and under ``pilothouse serve`` uvicorn's request cycle too
    (``pilothouse.protocol``): the app gets the whole body in one ``receive`` (or
    ``PayloadTooLarge`` raised from it past ``max_body_bytes``). Other paths still reach
    ``asgi_routes``."""


# --- gateway ----------------------------------------------------------------------------------


@hookspec
def register_providers(register: Callable[[type[Provider]], None]) -> None:
    """Register gateway providers: call ``register(MyProvider)`` with a
    :class:`pilothouse.gateway.providers.Provider` subclass whose ``name`` is what deployments
    name in ``provider:``. The gateway creates one instance per process with its outbound HTTP
    seam (``MyProvider(upstream)``)."""


@hookspec
def gateway_request(call: Call) -> Awaitable[None] | None:
    """Called for each ``/v1`` model call after authentication, before validation and routing.

    May rewrite ``call.body`` (e.g. render a ``"prompt"`` reference into ``messages``), set
    ``call.prompt_name`` / ``call.prompt_version``, add ``call.metadata`` entries for the trace,
    or raise a :class:`pilothouse.errors.PilothouseError` such as ``GuardrailBlocked`` to refuse
    the call. May be a coroutine function; the gateway awaits it. Only called when implemented.
    """


@hookspec
def gateway_response(call: Call, response: dict[str, Any]) -> Awaitable[None] | None:
    """Called once with each answer (OpenAI ``chat.completion`` shape), streamed or not.

    A non-streaming answer comes before it is sent: the hook may modify ``response`` in place
    (e.g. redact output) or raise a ``PilothouseError`` to replace it with an error. A streamed
    answer (``call.stream`` is true) comes after its last chunk was sent, assembled from the
    chunks the client got (text, tool calls, finish reasons, usage): edits no longer reach the
    client and errors are only logged, but ``call.metadata`` entries still reach the trace. To
    act on a stream while it flows, use ``gateway_stream``. The response cache stores the
    streamed answer after these hooks, as it does a non-streamed one: edits reach the cache,
    and an error keeps the answer out of it. Cached answers are not passed here. May be a
    coroutine function. Decorate an implementation with ``@skip_streams`` (below
    ``@hookimpl``) when it has no use for streamed answers: assembling one has a cost.
    """


@hookspec
def gateway_stream(
    call: Call,
) -> Callable[[AsyncIterator[dict[str, Any]]], AsyncIterator[dict[str, Any]]] | None:
    """Called when a streamed answer starts; return a filter for its chunks, or None.

    A filter takes the async iterator of ``chat.completion.chunk`` dicts (OpenAI shape) and
    returns one (e.g. restoring placeholders, or checking output over a sliding window). It may
    raise a ``PilothouseError`` such as ``GuardrailBlocked``: the gateway then ends the stream
    with a well-formed error event and ``[DONE]``. Filters chain in hook call order.
    """


# --- guardrails -------------------------------------------------------------------------------


@hookspec
def register_guardrails(register: Callable[[GuardrailCheck], None]) -> None:
    """Register guardrail checks: call ``register(Check(name=..., scan=..., ...))`` for each.

    ``scan(text, where, options)`` gets the text, where it sits (``input``, ``context`` or
    ``output``) and the policy rule's options, and returns a list of
    :class:`pilothouse.guardrails.Finding` (type, start, end, score, signals). It must be fast
    and must not raise. Policies name checks by ``Check.name``. Plugins registered later are
    called first and the first registration of a name wins, so a plugin can replace a built-in.
    """


# --- evaluation -------------------------------------------------------------------------------


@hookspec
def register_evaluators(register: Callable[[Evaluator], None]) -> None:
    """Register evaluators: call ``register(Evaluator(name=..., score=..., description=...))``.

    ``score(sample, options)`` gets a :class:`pilothouse.evals.Sample` (input, output,
    expected, context, metadata, latency, cost and a gateway client for model calls) and the
    evaluator's config options, and returns a :class:`pilothouse.evals.Score` (value, passed,
    reason); it may be a coroutine function. An exception becomes a per-item error score.
    Experiments and ``eval.yaml`` name evaluators by ``Evaluator.name``; plugins registered
    later are called first and the first registration of a name wins.
    """
