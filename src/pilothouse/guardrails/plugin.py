"""Guardrails as a built-in plugin: the checks, the API, the CLI and the gateway hooks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilothouse.errors import PilothouseError
from pilothouse.gateway.config import ConfigSource
from pilothouse.guardrails import (
    content,
    embeddings,
    grounding,
    injection,
    pii,
    secrets,
    topics,
    toxicity,
)
from pilothouse.guardrails.engine import Guardrails
from pilothouse.guardrails.gateway import (
    Pending,
    Vaults,
    check_request,
    check_response,
    may_select,
    select_policy,
    stream_filter,
)
from pilothouse.guardrails.model import Check
from pilothouse.guardrails.ner import RECOGNIZER
from pilothouse.hookspecs import hookimpl, skip_streams

if TYPE_CHECKING:
    import click

    from pilothouse.gateway.call import Call
    from pilothouse.runtime import Runtime

log = logging.getLogger(__name__)

BUILTIN_CHECKS: tuple[Check, ...] = (
    Check(
        "pii",
        pii.scan,
        "Personal data: email, phone, card, IBAN, SSN, IP, URL, DOB, ID, address",
        spans=True,
    ),
    Check(
        "secrets",
        secrets.scan,
        "Credentials: provider tokens, private keys, passwords, high-entropy strings",
        spans=True,
    ),
    Check(
        "injection",
        injection.scan,
        "Prompt injection and jailbreaks: heuristics, known-attack similarity, classifier",
        wheres=("input", "context"),
    ),
    Check(
        "toxicity", toxicity.scan, "Toxic or abusive language: categorized lexicon and classifier"
    ),
    Check(
        "keywords",
        content.scan_keywords,
        "Denied words, phrases and topics (options: words, topics)",
        spans=True,
    ),
    Check(
        "regex",
        content.scan_regex,
        "Named regular expressions (options: patterns {TYPE: regex})",
        spans=True,
    ),
    Check("max_length", content.scan_max_length, "Text longer than options.max_chars"),
    Check(
        "json_schema",
        content.scan_json_schema,
        "Output that is not JSON or does not match options.schema (repair: re-ask once)",
        wheres=("output",),
        complete=True,
    ),
    Check(
        "topics",
        topics.scan_topics,
        "Denied (or outside allowed) topics: embedding similarity to descriptions, keywords",
        spans=True,
    ),
    Check(
        "groundedness",
        grounding.scan_groundedness,
        "Share of the answer not supported by the retrieved context (hallucination signal)",
        wheres=("output",),
        complete=True,
    ),
    Check(
        "canary",
        content.scan_canary,
        "Canary tokens from the system prompt leaking into the output",
        spans=True,
        wheres=("output",),
    ),
)


@hookimpl
def register_guardrails(register: Callable[[Check], None]) -> None:
    for check in BUILTIN_CHECKS:
        register(check)


def _yaml_source(runtime: Runtime) -> ConfigSource | None:
    """The gateway's ``pilothouse.yaml`` source (our own reader when the gateway is not up)."""
    source = getattr(runtime.state.get("gateway"), "source", None)
    if isinstance(source, ConfigSource):
        return source
    path = runtime.settings.gateway_config
    if not path:
        return None
    found = runtime.state.get("guardrails.source")
    if found is None:
        found = runtime.state["guardrails.source"] = ConfigSource(Path(path))
    mine: ConfigSource = found
    return mine


def load_for(runtime: Runtime, section: Mapping[str, Any] | None = None) -> Guardrails:
    """Build the runtime's guardrails from its plugins, settings and ``pilothouse.yaml``'s
    ``guardrails:`` section, and keep them in state."""
    path = runtime.settings.guardrails_config
    embeddings.configure(str((section or {}).get("embedder") or ""))
    RECOGNIZER.configure(str((section or {}).get("ner") or ""))
    guard = Guardrails.load(runtime.plugins, Path(path) if path else None, section=section)
    fallback = guard.gateway_policy or runtime.settings.guardrails_gateway_policy
    if fallback:
        guard.policy(fallback)  # fail at start on a typo, not on the first request
    runtime.state["guardrails"] = guard
    runtime.state.setdefault("guardrails.vaults", Vaults())
    return guard


def guardrails_for(runtime: Runtime) -> Guardrails:
    """The runtime's guardrails, rebuilt when the ``guardrails:`` section of ``pilothouse.yaml``
    changed (the gateway re-reads the file); a bad edit keeps the previous policies."""
    source = _yaml_source(runtime)
    section = source.get().guardrails if source is not None else None
    guard: Guardrails | None = runtime.state.get("guardrails")
    if guard is not None and guard.section is section:
        return guard
    try:
        return load_for(runtime, section)
    except PilothouseError as exc:
        if guard is None:
            raise
        log.error("guardrail policies not reloaded, keeping the previous ones: %s", exc.detail)
        guard.section = section
        return guard


@hookimpl
def startup(runtime: Runtime) -> None:
    guardrails_for(runtime)


@hookimpl
def asgi_routes(runtime: Runtime) -> list[Any]:
    from pilothouse.guardrails.api import router

    return list(router.routes)


@hookimpl
def register_commands(cli: click.Group) -> None:
    from pilothouse.guardrails.cli import guardrails

    cli.add_command(guardrails)


def _state(call: Call) -> tuple[Guardrails, Vaults]:
    guard = guardrails_for(call.runtime)
    vaults: Vaults = call.runtime.state["guardrails.vaults"]
    return guard, vaults


@hookimpl(trylast=True)
def gateway_request(call: Call) -> Awaitable[None] | None:
    """Input/context checks after other plugins (e.g. prompt rendering) shaped the body.

    A coroutine, so the gateway runs it after awaiting the other plugins' coroutines (and a
    block never leaves theirs un-awaited); None when no policy can apply to the call.
    """
    call.metadata.pop("guardrails", None)  # a client's metadata must not pose as ours
    guard = guardrails_for(call.runtime)
    if not may_select(guard, call, call.runtime.settings.guardrails_gateway_policy):
        return None
    return _check_request(call)


async def _check_request(call: Call) -> None:
    guard, vaults = _state(call)
    policy = select_policy(guard, call, call.runtime.settings.guardrails_gateway_policy)
    if policy is None:
        return
    call.metadata["guardrails"] = {"policy": policy.name, "decisions": []}
    check_request(guard, policy, call, vaults)


@hookimpl(tryfirst=True)
@skip_streams
def gateway_response(call: Call, response: dict[str, Any]) -> Awaitable[None] | None:
    """Output checks on a complete answer; placeholders restored before anything else sees it.

    A coroutine only when a ``json_schema`` rule asks to repair an invalid answer. Streams
    are checked while they flow (``gateway_stream``), so their assembled answer is not needed.
    """
    if "guardrails" not in call.metadata:
        return None
    guard, vaults = _state(call)
    pending = vaults.pop(call.request_id) or Pending()
    policy = pending.policy or guard.policy(call.metadata["guardrails"]["policy"])
    return check_response(guard, policy, call, response, pending)


@hookimpl
def gateway_stream(
    call: Call,
) -> Callable[[AsyncIterator[dict[str, Any]]], AsyncIterator[dict[str, Any]]] | None:
    """Output checks over a sliding window of a streamed answer, pseudonyms restored."""
    if "guardrails" not in call.metadata:
        return None
    guard, vaults = _state(call)
    pending = vaults.pop(call.request_id) or Pending()
    policy = pending.policy or guard.policy(call.metadata["guardrails"]["policy"])
    return stream_filter(guard, policy, call, pending)
