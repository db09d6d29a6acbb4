"""Running a policy over a text: every rule's check, thresholds, then one rewrite of the spans.

Checks all see the original text, so offsets stay exact; redact/pseudonymize spans from every
rule are merged (overlaps resolved once) and rewritten in a single pass at the end. A check that
raises is recorded as an ``error`` signal and does not fail the request (fail-open), unless the
rule's options say ``fail_closed: true``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pluggy

from pilothouse.errors import NotFound
from pilothouse.guardrails.model import REWRITING, Check, Decision, Finding, Outcome, Where
from pilothouse.guardrails.policy import Attach, Policy, load_policies, parse_policy
from pilothouse.guardrails.rewrite import Vault, resolve_overlaps, rewrite

log = logging.getLogger(__name__)


def collect_checks(plugins: pluggy.PluginManager | None = None) -> dict[str, Check]:
    """Checks registered through the ``register_guardrails`` hook (built-ins included)."""
    if plugins is None:
        from pilothouse.plugins import pm

        plugins = pm
    found: dict[str, Check] = {}
    # pluggy calls later-registered plugins first: the first registration of a name wins,
    # so an installed plugin can replace a built-in check.
    plugins.hook.register_guardrails(register=lambda c: found.setdefault(c.name, c))
    return found


class Guardrails:
    """The checks and named policies of one process.

    ``section`` is the ``guardrails:`` section of ``pilothouse.yaml`` they were built from (the
    gateway plugin rebuilds them when the file reloads); its ``gateway_policy`` applies to
    gateway calls that nothing else selects.
    """

    def __init__(
        self,
        checks: Mapping[str, Check],
        policies: Mapping[str, Policy],
        section: Mapping[str, Any] | None = None,
    ) -> None:
        self.checks = dict(checks)
        self.policies = dict(policies)
        self.section = section
        self.gateway_policy = str((section or {}).get("gateway_policy") or "")
        #: the policies attached to keys, prompts, models or projects (select_policy tries them)
        self.attached = tuple(p for p in self.policies.values() if p.attach != Attach())

    @classmethod
    def load(
        cls,
        plugins: pluggy.PluginManager | None = None,
        path: Path | None = None,
        raw: Any = None,
        section: Mapping[str, Any] | None = None,
    ) -> Guardrails:
        checks = collect_checks(plugins)
        return cls(checks, load_policies(checks, path, raw, section), section)

    def policy(self, policy: str | Policy | Mapping[str, Any]) -> Policy:
        """A policy by name, or an inline one given as data."""
        if isinstance(policy, Policy):
            return policy
        if isinstance(policy, str):
            found = self.policies.get(policy)
            if found is None:
                raise NotFound(f"no guardrail policy named {policy!r}", param="policy")
            return found
        return parse_policy(str(policy.get("name") or "inline"), policy, self.checks)

    def check(
        self,
        text: str,
        policy: str | Policy | Mapping[str, Any] = "default",
        where: Where = "input",
        vault: Vault | None = None,
    ) -> Decision:
        """Run ``policy``'s rules for ``where`` on ``text``.

        With ``pseudonymize`` the placeholders go into ``vault`` (pass the same vault for the
        output so they are restored); on ``output`` the vault's placeholders are restored in
        the returned text.
        """
        chosen = self.policy(policy)
        started = time.perf_counter()
        outcomes: list[Outcome] = []
        to_rewrite: list[tuple[Finding, bool]] = []
        verdict = "allow"
        blocked_by: str | None = None
        for rule in chosen.rules(where):
            check = self.checks[rule.check]
            options = {**check.defaults, **rule.options}
            t0 = time.perf_counter()
            try:
                found = check.scan(text, where, options)
            except Exception:  # a broken check must not break the request
                log.exception("guardrail check %r failed", rule.check)
                failed = Finding(rule.check, "ERROR", 0, len(text), 1.0, ("error",))
                found = [failed] if options.get("fail_closed") else []
            hits = [f for f in found if f.score >= rule.threshold]
            if check.spans:
                hits = resolve_overlaps(hits)
            elapsed = (time.perf_counter() - t0) * 1000
            outcomes.append(Outcome(rule.check, rule.action, tuple(hits), elapsed))
            if not hits:
                continue
            if rule.action == "block":
                verdict, blocked_by = "block", rule.check
                break
            if rule.action in REWRITING:
                keep = rule.action == "pseudonymize"
                to_rewrite.extend((f, keep) for f in hits)
            elif rule.action == "flag" and verdict == "allow":
                verdict = "flag"
        out = text
        if verdict != "block":
            if to_rewrite:
                restorable = {id(f) for f, k in to_rewrite if k}
                spans = resolve_overlaps(f for f, _ in to_rewrite)
                vault = vault if vault is not None else Vault()
                out = rewrite(text, spans, vault, keep={id(f) for f in spans} & restorable)
                verdict = "modify"
            if where == "output" and vault is not None:
                restored = vault.restore(out)
                if restored != out and verdict == "allow":
                    verdict = "modify"
                out = restored
        return Decision(
            policy=chosen.name,
            where=where,
            verdict=verdict,  # type: ignore[arg-type]
            text=out,
            outcomes=outcomes,
            latency_ms=(time.perf_counter() - started) * 1000,
            blocked_by=blocked_by,
        )


_default: Guardrails | None = None
_lock = threading.Lock()


def default_guardrails() -> Guardrails:
    """The process-wide guardrails: installed checks and the built-in policies."""
    global _default
    if _default is None:
        with _lock:
            if _default is None:
                _default = Guardrails.load()
    return _default


def check(
    text: str,
    policy: str | Policy | Mapping[str, Any] = "default",
    where: Where = "input",
    vault: Vault | None = None,
) -> Decision:
    """Run a guardrail policy on ``text`` in-process: ``check("call me at ...", "strict")``."""
    return default_guardrails().check(text, policy, where, vault)


__all__ = ["Guardrails", "check", "collect_checks", "default_guardrails"]
