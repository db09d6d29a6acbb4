"""Guardrails in the gateway: check each call's input before routing and its answer after.

Texts are taken from the OpenAI-shaped body: user messages (and legacy ``prompt`` / embeddings
``input``) are ``input``; ``tool`` and ``function`` messages (retrieved or tool content) are
``context``; system and assistant turns are trusted. Pseudonyms live in a per-request vault kept
in memory only (bounded), and are restored in the answer, JSON or streamed.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from pilothouse.errors import GuardrailBlocked
from pilothouse.guardrails.engine import Guardrails
from pilothouse.guardrails.model import Decision, Where
from pilothouse.guardrails.policy import Policy
from pilothouse.guardrails.rewrite import StreamRestorer, Vault

if TYPE_CHECKING:
    from pilothouse.gateway.call import Call

#: Chunks of streamed output checked together: a violation stops the stream within this many
#: characters, and matches split across chunks are still seen.
STREAM_WINDOW = 400

Slot = tuple[Any, Any, Where, str]  # container, key, where, path for errors


def _text_slots(body: dict[str, Any]) -> Iterator[Slot]:
    """Every checkable string of a request body, with where it sits."""
    messages = body.get("messages")
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                continue
            role = message.get("role")
            if role in ("tool", "function"):
                where: Where = "context"
            elif role == "user":
                where = "input"
            else:
                continue
            content = message.get("content")
            if isinstance(content, str):
                yield message, "content", where, f"messages[{i}].content"
            elif isinstance(content, list):
                for j, part in enumerate(content):
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        yield part, "text", where, f"messages[{i}].content[{j}].text"
    for field in ("prompt", "input"):
        value = body.get(field)
        if isinstance(value, str):
            yield body, field, "input", field
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, str):
                    yield value, i, "input", f"{field}[{i}]"


def blocked(decision: Decision, path: str) -> GuardrailBlocked:
    """The client-facing error: names the policy, check and field, never the matched text."""
    return GuardrailBlocked(
        f"blocked by guardrail policy {decision.policy!r}: the {decision.blocked_by!r} check "
        f"fired on the {decision.where} ({path})",
        param=path,
        errors=[{"path": path, "policy": decision.policy, "check": decision.blocked_by}],
    )


class Vaults:
    """Per-request pseudonym vaults, in memory only, oldest dropped beyond ``limit``."""

    def __init__(self, limit: int = 10_000, ttl: float = 3600.0) -> None:
        self._items: OrderedDict[str, tuple[float, Vault]] = OrderedDict()
        self._lock = threading.Lock()
        self.limit = limit
        self.ttl = ttl

    def put(self, request_id: str, vault: Vault) -> None:
        with self._lock:
            self._items[request_id] = (time.monotonic(), vault)
            while len(self._items) > self.limit:
                self._items.popitem(last=False)

    def pop(self, request_id: str) -> Vault | None:
        with self._lock:
            found = self._items.pop(request_id, None)
        if found is None or time.monotonic() - found[0] > self.ttl:
            return None
        return found[1]


def select_policy(guard: Guardrails, call: Call, fallback: str) -> Policy | None:
    """The policy for a call: the key's ``guardrail_policy`` limit, an attached one, the default."""
    named = call.api_key.limits.get("guardrail_policy")
    if isinstance(named, str) and named:
        return guard.policy(named)
    for policy in guard.policies.values():
        a = policy.attach
        if (
            (call.model and call.model in a.models)
            or call.api_key.name in a.keys
            or call.api_key.project_id in a.projects
        ):
            return policy
    return guard.policy(fallback) if fallback else None


def _record(call: Call, decision: Decision, path: str) -> None:
    entry = decision.public()
    entry["path"] = path
    summary = call.metadata.setdefault("guardrails", {"policy": decision.policy, "decisions": []})
    summary["decisions"].append(entry)
    if decision.verdict != "allow":
        summary["verdict"] = decision.verdict
    summary["latency_ms"] = round(sum(d["latency_ms"] for d in summary["decisions"]), 4)


def check_request(guard: Guardrails, policy: Policy, call: Call, vaults: Vaults) -> None:
    """Input and context checks on the body; rewrites it in place or raises GuardrailBlocked."""
    vault = Vault()
    for container, key, where, path in list(_text_slots(call.body)):
        if not policy.rules(where):
            continue
        decision = guard.check(container[key], policy, where, vault)
        _record(call, decision, path)
        if decision.blocked:
            raise blocked(decision, path)
        if decision.text != container[key]:
            container[key] = decision.text
    if len(vault):
        vaults.put(call.request_id, vault)
        # The body now holds placeholders shared by many users: a cached answer with restored
        # values must never be served to someone else.
        call.headers["x-pilothouse-cache"] = "no-store"


def _output_slots(response: dict[str, Any]) -> Iterator[Slot]:
    for i, choice in enumerate(response.get("choices") or []):
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            yield message, "content", "output", f"choices[{i}].message.content"
        elif isinstance(choice.get("text"), str):
            yield choice, "text", "output", f"choices[{i}].text"


def check_response(
    guard: Guardrails, policy: Policy, call: Call, response: dict[str, Any], vaults: Vaults
) -> None:
    """Output checks on a complete answer, then pseudonyms restored; may raise GuardrailBlocked."""
    vault = vaults.pop(call.request_id)
    for container, key, where, path in list(_output_slots(response)):
        text = container[key]
        if policy.rules("output"):
            decision = guard.check(text, policy, where, vault)
            _record(call, decision, path)
            if decision.blocked:
                raise blocked(decision, path)
            text = decision.text
        elif vault is not None:
            text = vault.restore(text)
        if text != container[key]:
            _replace(response, container, key, text)


def _replace(response: dict[str, Any], container: dict[str, Any], key: str, text: str) -> None:
    """Set the text on a copy of its message, so the trace keeps what the model wrote."""
    for choice in response.get("choices") or []:
        if isinstance(choice, dict) and choice.get("message") is container:
            choice["message"] = {**container, key: text}
            return
    container[key] = text


def stream_filter(
    guard: Guardrails, policy: Policy, call: Call, vaults: Vaults
) -> Callable[[AsyncIterator[dict[str, Any]]], AsyncIterator[dict[str, Any]]]:
    """Wrap a chunk stream: output checks over a sliding window, pseudonyms restored.

    Each choice's text is checked as it grows (the last :data:`STREAM_WINDOW` characters plus
    the new chunk), so a violation stops the stream within one window; a block raises
    GuardrailBlocked, which the gateway sends as a final error event before ``[DONE]``.
    """
    vault = vaults.pop(call.request_id) or Vault()
    check_output = bool(policy.rules("output"))

    async def wrapped(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        tails: dict[int, str] = {}
        restorers: dict[int, StreamRestorer] = {}
        async for chunk in chunks:
            for choice in chunk.get("choices") or []:
                if not isinstance(choice, dict):
                    continue
                index = choice.get("index", 0)
                holder, key = _delta_text(choice)
                text = holder[key] if holder is not None else ""
                if check_output and text:
                    window = tails.get(index, "") + text
                    decision = guard.check(window, policy, "output", None)
                    if decision.blocked:
                        _record(call, decision, f"choices[{index}].delta.content")
                        raise blocked(decision, f"choices[{index}].delta.content")
                    tails[index] = window[-STREAM_WINDOW:]
                restorer = restorers.setdefault(index, StreamRestorer(vault))
                out = restorer.feed(text) if text else ""
                if choice.get("finish_reason"):
                    out += restorer.flush()
                if holder is not None:
                    holder[key] = out
                elif out and isinstance(choice.setdefault("delta", {}), dict):
                    choice["delta"]["content"] = out
            yield chunk

    return wrapped


def _delta_text(choice: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    delta = choice.get("delta")
    if isinstance(delta, dict) and isinstance(delta.get("content"), str):
        return delta, "content"
    if isinstance(choice.get("text"), str):
        return choice, "text"
    return None, ""


__all__ = [
    "STREAM_WINDOW",
    "Vaults",
    "blocked",
    "check_request",
    "check_response",
    "select_policy",
    "stream_filter",
]
