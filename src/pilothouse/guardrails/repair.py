"""One automatic repair of structured output: re-ask the model with the validation errors.

A ``json_schema`` output rule with ``options: {repair: true}`` that blocks a complete chat
answer does not fail the call at once: the gateway sends the conversation again with the
invalid answer and a user message naming what is wrong, once, and returns the new answer if
it passes every output rule; otherwise the call is blocked as usual. Both attempts are
recorded on the trace (``pilothouse.guardrails.repair``) and the usage of both is billed.
Streamed answers are not repaired: their text has already been sent.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pilothouse.guardrails.content import error_path, schema_errors
from pilothouse.guardrails.model import Decision
from pilothouse.guardrails.policy import Policy, Rule
from pilothouse.guardrails.record import blocked, record
from pilothouse.guardrails.rewrite import Vault

if TYPE_CHECKING:
    from pilothouse.gateway.call import Call
    from pilothouse.guardrails.engine import Guardrails

REPAIR_PROMPT = (
    "Your previous answer is not valid JSON for the required schema: {errors}. "
    "Answer again with only the corrected JSON, no other text."
)
#: Most validation errors named in the repair message.
MAX_ERRORS = 5


@dataclass(eq=False)
class Repair:
    """A blocked answer that its rule allows to repair; awaiting it runs the second attempt
    (the coroutine is made only then, so a repair never awaited leaves nothing behind)."""

    guard: Guardrails
    call: Call
    response: dict[str, Any]
    rule: Rule
    policy: Policy
    vault: Vault
    failed: Decision
    path: str
    text: str  # the model's answer as it wrote it (placeholders not restored)

    def __await__(self) -> Generator[Any, None, None]:
        return repair_answer(self).__await__()


def repairable(policy: Policy, decision: Decision, call: Call, choices: int) -> Rule | None:
    """The ``json_schema`` rule with ``repair: true`` that blocked ``decision``, if any."""
    if not decision.blocked or call.operation != "chat" or call.stream or choices != 1:
        return None
    # Every rule up to the blocking one left an outcome, in order.
    rule = policy.rules(decision.where)[len(decision.outcomes) - 1]
    if rule.check == "json_schema" and rule.options.get("repair") is True:
        return rule
    return None


def repair_message(text: str, schema: Any) -> str:
    """The user message asking for a corrected answer, naming what is wrong."""
    kind, errors = schema_errors(text, schema)
    if kind == "INVALID_JSON":
        reasons = ["the answer does not parse as JSON"]
    else:
        reasons = [f"at {error_path(e)}: {e.message}" for e in errors[:MAX_ERRORS]]
    return REPAIR_PROMPT.format(errors="; ".join(reasons) or kind.lower())


def _attempt(number: int, decision: Decision, text: str, capture: int | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "attempt": number,
        "valid": not decision.blocked,
        "blocked_by": decision.blocked_by,
        "signals": [s for f in decision.findings if f.check == "json_schema" for s in f.signals],
    }
    if capture is not None:
        entry["output"] = text if capture <= 0 else text[:capture]
    return entry


def _usage(first: Any, second: Any) -> Any:
    """Token counts of both attempts added up (the call pays for both)."""
    if not isinstance(first, dict) or not isinstance(second, dict):
        return second if isinstance(second, dict) else first
    total = dict(second)
    for key, value in first.items():
        if isinstance(value, int) and isinstance(total.get(key), int):
            total[key] += value
    return total


async def repair_answer(repair: Repair) -> None:
    """Ask once more; put the repaired answer into the response or raise GuardrailBlocked."""
    from pilothouse.gateway.plugin import gateway_of

    guard, call, response = repair.guard, repair.call, repair.response
    settings = call.runtime.settings
    capture = settings.gateway_content_max_chars if settings.gateway_capture_content else None
    summary = call.metadata["guardrails"]
    attempts = [_attempt(1, repair.failed, repair.text, capture)]
    summary["repair"] = {"check": repair.rule.check, "path": repair.path, "attempts": attempts}
    original = call.body
    schema = repair.rule.options.get("schema")
    call.body = {
        **original,
        "messages": [
            *original.get("messages", []),
            {"role": "assistant", "content": repair.text},
            {"role": "user", "content": repair_message(repair.text, schema)},
        ],
    }
    try:
        second = await gateway_of(call.runtime).router.call(call, "chat")
    finally:
        call.body = original
    choices = second.get("choices") or []
    message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
    text = message.get("content") if isinstance(message, dict) else None
    text = text if isinstance(text, str) else ""
    decision = guard.check(text, repair.policy, "output", repair.vault)
    record(call, decision, repair.path)
    attempts.append(_attempt(2, decision, text, capture))
    usage = _usage(response.get("usage"), second.get("usage"))
    if isinstance(usage, dict):
        call.usage = usage
    if decision.blocked:
        raise blocked(decision, repair.path)
    summary["verdict"] = "modify"
    assert isinstance(message, dict)
    repaired = {**second, "usage": usage}
    repaired["choices"] = [{**choices[0], "message": {**message, "content": decision.text}}]
    response.clear()
    response.update(repaired)
    if isinstance(second.get("model"), str):
        call.served_model = second["model"]
    if capture is not None:
        call.output = message  # what the model wrote the second time, as the trace's output


__all__ = ["REPAIR_PROMPT", "Repair", "repair_answer", "repair_message", "repairable"]
