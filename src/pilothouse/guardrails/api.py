"""``/api/guardrails``: run a policy on a text, list checks and policies."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from pilothouse.api.deps import Caller, RuntimeDep, Strict
from pilothouse.guardrails.engine import Guardrails
from pilothouse.runtime import Runtime

router = APIRouter(tags=["guardrails"])


def guardrails_of(runtime: Runtime) -> Guardrails:
    """The runtime's guardrails (loaded at startup, rebuilt when ``pilothouse.yaml`` changes)."""
    from pilothouse.guardrails.plugin import guardrails_for

    return guardrails_for(runtime)


class CheckRequest(Strict):
    text: Annotated[str, Field(max_length=1_000_000, description="The text to check")]
    policy: str | dict[str, Any] = Field(
        "default",
        description="A policy name, or an inline policy: {input: [{check, action, threshold, "
        "options}], context: [...], output: [...]}",
    )
    where: Literal["input", "context", "output"] = "input"
    include_text: bool = Field(
        True, description="Return the rewritten text (redacted or pseudonymized)"
    )


class FindingOut(BaseModel):
    check: str
    type: str
    start: int
    end: int
    score: float
    signals: list[str]


class OutcomeOut(BaseModel):
    check: str
    action: str
    fired: bool
    score: float
    latency_ms: float
    findings: list[FindingOut]


class CheckResponse(BaseModel):
    policy: str
    where: str
    verdict: str = Field(description="allow, flag, modify (text rewritten) or block")
    blocked_by: str | None
    latency_ms: float
    checks: list[OutcomeOut]
    text: str | None = Field(None, description="The text to pass on (with placeholders)")
    placeholders: dict[str, str] = Field(
        default_factory=dict,
        description="Pseudonym placeholder -> original value (only for pseudonymize)",
    )


@router.post("/api/guardrails/check", response_model=CheckResponse)
def check_text(body: CheckRequest, request: Request, runtime: RuntimeDep, caller: Caller) -> Any:
    """Run a guardrail policy on one text; findings carry offsets, never the matched values."""
    from pilothouse.guardrails.rewrite import Vault

    guard = guardrails_of(runtime)
    vault = Vault()
    decision = guard.check(body.text, body.policy, body.where, vault)
    out = decision.public(include_text=body.include_text and not decision.blocked)
    out["placeholders"] = vault.to_dict() if body.include_text else {}
    return out


class CheckInfo(BaseModel):
    name: str
    description: str
    spans: bool = Field(description="Findings are spans (redact/pseudonymize possible)")
    wheres: list[str]
    complete: bool = Field(
        False, description="Judges only a finished text (in streams: once, at the end)"
    )


@router.get("/api/guardrails/checks", response_model=list[CheckInfo])
def list_checks(runtime: RuntimeDep, caller: Caller) -> Any:
    """Every registered check (built-in and plugins)."""
    guard = guardrails_of(runtime)
    return [
        {
            "name": c.name,
            "description": c.description,
            "spans": c.spans,
            "wheres": list(c.wheres),
            "complete": c.complete,
        }
        for c in sorted(guard.checks.values(), key=lambda c: c.name)
    ]


@router.get("/api/guardrails/policies", response_model=list[dict[str, Any]])
def list_policies(runtime: RuntimeDep, caller: Caller) -> Any:
    """The named policies: built-in ones and those of the guardrails config file."""
    guard = guardrails_of(runtime)
    return [p.to_dict() for p in guard.policies.values()]


__all__ = ["guardrails_of", "router"]
