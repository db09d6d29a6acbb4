"""Policies: named, ordered rules (check, threshold, action) for input, context and output.

A policy is plain data, read from the ``guardrails:`` section of ``pilothouse.yaml`` (or of the
``guardrails_config`` file) or sent to the API::

    policies:
      support-bot:
        input:
          - {check: pii, action: pseudonymize}
          - {check: secrets, action: block}
          - {check: injection, action: block, threshold: 0.5}
        context:
          - {check: injection, action: block}
        output:
          - {check: canary, action: block}
          - {check: pii, action: redact, options: {types: [EMAIL, PHONE]}}
        attach: {models: [gpt-4o-mini], keys: [], projects: [], prompts: []}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from pilothouse.errors import ConfigError, ValidationFailed
from pilothouse.guardrails.model import ACTIONS, REWRITING, WHERES, Action, Check, Where

DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Rule:
    """One step of a policy: run ``check``; findings scoring >= ``threshold`` trigger ``action``."""

    check: str
    action: Action = "block"
    threshold: float = DEFAULT_THRESHOLD
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "action": self.action,
            "threshold": self.threshold,
            "options": dict(self.options),
        }


@dataclass(frozen=True)
class Attach:
    """Where the gateway applies a policy: model aliases, API key names, project ids, prompts."""

    models: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    projects: tuple[int, ...] = ()
    prompts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    name: str
    input: tuple[Rule, ...] = ()
    context: tuple[Rule, ...] = ()
    output: tuple[Rule, ...] = ()
    description: str = ""
    attach: Attach = field(default_factory=Attach)

    def rules(self, where: Where) -> tuple[Rule, ...]:
        rules: tuple[Rule, ...] = getattr(self, where)
        return rules

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            **{w: [r.to_dict() for r in self.rules(w)] for w in WHERES},
            "attach": {
                "models": list(self.attach.models),
                "keys": list(self.attach.keys),
                "projects": list(self.attach.projects),
                "prompts": list(self.attach.prompts),
            },
        }


class PolicyError(ValidationFailed):
    """A policy definition is invalid; ``errors`` lists path and reason."""


def _fail(path: str, reason: str) -> PolicyError:
    return PolicyError(f"{path}: {reason}", errors=[{"path": path, "reason": reason}])


def _rule(path: str, raw: Any, where: Where, checks: Mapping[str, Check]) -> Rule:
    if isinstance(raw, str):
        raw = {"check": raw}
    if not isinstance(raw, Mapping):
        raise _fail(path, "expected a mapping with 'check' and 'action'")
    unknown = set(raw) - {"check", "action", "threshold", "options"}
    if unknown:
        raise _fail(path, f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    name = raw.get("check")
    if not isinstance(name, str) or name not in checks:
        raise _fail(f"{path}.check", f"unknown check {name!r}; known: {', '.join(sorted(checks))}")
    check = checks[name]
    action = raw.get("action", "block")
    if action not in ACTIONS:
        raise _fail(f"{path}.action", f"expected one of {', '.join(ACTIONS)}")
    if action in REWRITING and not check.spans:
        raise _fail(f"{path}.action", f"check {name!r} judges the whole text; cannot {action}")
    if where not in check.wheres:
        raise _fail(f"{path}.check", f"check {name!r} does not run on {where}")
    threshold = raw.get("threshold", DEFAULT_THRESHOLD)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise _fail(f"{path}.threshold", "expected a number between 0 and 1")
    if not 0.0 <= float(threshold) <= 1.0:
        raise _fail(f"{path}.threshold", "expected a number between 0 and 1")
    options = raw.get("options", {})
    if not isinstance(options, Mapping):
        raise _fail(f"{path}.options", "expected a mapping")
    return Rule(name, cast(Action, action), float(threshold), dict(options))


def parse_policy(name: str, raw: Any, checks: Mapping[str, Check]) -> Policy:
    """Build a :class:`Policy` from plain data, or raise :class:`PolicyError` naming the field."""
    if not isinstance(raw, Mapping):
        raise _fail(name, "expected a mapping with input/context/output rule lists")
    unknown = set(raw) - {"name", "description", "attach", *WHERES}
    if unknown:
        raise _fail(name, f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    stages: dict[str, tuple[Rule, ...]] = {}
    for where in WHERES:
        rules = raw.get(where) or []
        if not isinstance(rules, list):
            raise _fail(f"{name}.{where}", "expected a list of rules")
        stages[where] = tuple(
            _rule(f"{name}.{where}[{i}]", r, where, checks) for i, r in enumerate(rules)
        )
    attach_raw = raw.get("attach") or {}
    if not isinstance(attach_raw, Mapping):
        raise _fail(f"{name}.attach", "expected a mapping of models, keys, projects, prompts")
    unknown = set(attach_raw) - {"models", "keys", "projects", "prompts"}
    if unknown:
        raise _fail(f"{name}.attach.{sorted(map(str, unknown))[0]}", "unknown field")
    lists: dict[str, tuple[str, ...]] = {}
    for field_name in ("models", "keys", "projects", "prompts"):
        items = attach_raw.get(field_name) or []
        if isinstance(items, str | int):
            items = [items]
        if not isinstance(items, list):
            raise _fail(f"{name}.attach.{field_name}", "expected a list")
        lists[field_name] = tuple(str(i) for i in items)
    try:
        projects = tuple(int(p) for p in lists["projects"])
    except ValueError:
        raise _fail(f"{name}.attach.projects", "expected integer project ids") from None
    attach = Attach(lists["models"], lists["keys"], projects, lists["prompts"])
    return Policy(
        name=name,
        description=str(raw.get("description") or ""),
        attach=attach,
        input=stages["input"],
        context=stages["context"],
        output=stages["output"],
    )


#: Built-in policies, always available; a config file may override them by name.
BUILTIN_POLICIES: dict[str, dict[str, Any]] = {
    "default": {
        "description": "Pseudonymize PII, block secrets and injection; restore PII in answers.",
        "input": [
            {"check": "secrets", "action": "block"},
            {"check": "injection", "action": "block", "threshold": 0.5},
            {"check": "pii", "action": "pseudonymize"},
        ],
        "context": [{"check": "injection", "action": "block", "threshold": 0.5}],
        "output": [
            {"check": "canary", "action": "block"},
            {"check": "secrets", "action": "redact"},
        ],
    },
    "strict": {
        "description": "Block PII, secrets, injection and toxicity everywhere.",
        "input": [
            {"check": "secrets", "action": "block"},
            {"check": "pii", "action": "block"},
            {"check": "injection", "action": "block", "threshold": 0.4},
            {"check": "toxicity", "action": "block"},
        ],
        "context": [{"check": "injection", "action": "block", "threshold": 0.4}],
        "output": [
            {"check": "canary", "action": "block"},
            {"check": "secrets", "action": "block"},
            {"check": "pii", "action": "redact"},
            {"check": "toxicity", "action": "block"},
        ],
    },
    "redact-pii": {
        "description": "Redact PII and secrets on the way in and out; nothing is blocked.",
        "input": [
            {"check": "secrets", "action": "redact"},
            {"check": "pii", "action": "redact"},
        ],
        "output": [
            {"check": "secrets", "action": "redact"},
            {"check": "pii", "action": "redact"},
        ],
    },
    "monitor": {
        "description": "Run every built-in check and only record what fired.",
        "input": [
            {"check": c, "action": "log"} for c in ("pii", "secrets", "injection", "toxicity")
        ],
        "context": [{"check": "injection", "action": "log"}],
        "output": [{"check": c, "action": "log"} for c in ("pii", "secrets", "toxicity", "canary")],
    },
}


def _section_error(path: str, reason: str) -> ConfigError:
    return ConfigError(f"{path}: {reason}", param=path)


def parse_section(
    raw: Any, checks: Mapping[str, Check], path: str = "guardrails"
) -> dict[str, Any]:
    """Validate the ``guardrails:`` section of ``pilothouse.yaml``; errors name the field.

    Returns it as data (``policies``, ``gateway_policy``, ``embedder``, ``ner``); the runtime
    builds the policies with its own checks when the file is (re)loaded.
    """
    keys = ("embedder", "gateway_policy", "ner", "policies")
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise _section_error(path, "expected a mapping")
    for key in raw:
        if key not in keys:
            raise _section_error(f"{path}.{key}", f"unknown key; expected one of {', '.join(keys)}")
    for key, builtin in (("embedder", "sentence-transformers"), ("ner", "spacy")):
        value = raw.get(key) or ""
        module, _, attr = value.partition(":") if isinstance(value, str) else ("", "", "")
        if value and not (module == builtin or (module and attr)):
            raise _section_error(
                f"{path}.{key}", f"expected {builtin}[:model] or package.module:function"
            )
    policies = raw.get("policies") or {}
    if not isinstance(policies, Mapping):
        raise _section_error(f"{path}.policies", "expected a mapping of policy name to policy")
    for name, body in policies.items():
        try:
            parse_policy(str(name), body, checks)
        except PolicyError as exc:
            first = exc.errors[0]
            raise _section_error(f"{path}.policies.{first['path']}", first["reason"]) from None
    gateway_policy = raw.get("gateway_policy") or ""
    known = {*BUILTIN_POLICIES, *map(str, policies)}
    if not isinstance(gateway_policy, str) or (gateway_policy and gateway_policy not in known):
        raise _section_error(
            f"{path}.gateway_policy", f"unknown policy; known: {', '.join(sorted(known))}"
        )
    return {
        "policies": {str(k): v for k, v in policies.items()},
        "gateway_policy": gateway_policy,
        "embedder": raw.get("embedder") or "",
        "ner": raw.get("ner") or "",
    }


def load_policies(
    checks: Mapping[str, Check],
    path: Path | None = None,
    raw: Any = None,
    section: Mapping[str, Any] | None = None,
) -> dict[str, Policy]:
    """Built-in policies, then a YAML file's ``guardrails.policies`` (or ``policies``), then
    ``section``'s policies (``pilothouse.yaml``); a later definition replaces one by name."""
    merged: dict[str, Any] = dict(BUILTIN_POLICIES)
    if path is not None:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(
                f"guardrail policies file {str(path)!r} is unreadable: {exc}"
            ) from None
    if raw is not None:
        if isinstance(raw, Mapping) and "guardrails" in raw:
            raw = raw["guardrails"] or {}
        if isinstance(raw, Mapping) and "policies" in raw:
            raw = raw["policies"] or {}
        if not isinstance(raw, Mapping):
            raise ConfigError("guardrails.policies must be a mapping of name to policy")
        merged.update(raw)
    defined = {**(raw or {}), **((section or {}).get("policies") or {})}
    merged.update(defined)
    policies: dict[str, Policy] = {}
    for name, body in merged.items():
        try:
            policies[str(name)] = parse_policy(str(name), body, checks)
        except PolicyError as exc:
            if name in BUILTIN_POLICIES and name not in defined:
                continue  # a built-in needing a check that a plugin removed
            raise ConfigError(f"guardrail policy {exc.detail}") from None
    return policies


__all__ = [
    "BUILTIN_POLICIES",
    "Attach",
    "Policy",
    "PolicyError",
    "Rule",
    "load_policies",
    "parse_policy",
    "parse_section",
]
