"""Guardrails: fast, measured checks on model input, retrieved context and output.

Use in-process without a server::

    from pilothouse.guardrails import check
    decision = check("Mail me at ada@example.com", "redact-pii")
    decision.text      # 'Mail me at <EMAIL_1>'
    decision.verdict   # 'modify'

Checks register through the ``register_guardrails`` plugin hook; policies (ordered rules of
check, threshold and action for input, context and output) come built in or from the
``guardrails:`` section of ``pilothouse.yaml`` (or the ``guardrails_config`` file).
"""

from __future__ import annotations

from pilothouse.guardrails.engine import Guardrails, check, default_guardrails
from pilothouse.guardrails.model import Check, Decision, Finding, Outcome, Where
from pilothouse.guardrails.policy import Policy, Rule, parse_policy
from pilothouse.guardrails.rewrite import StreamRestorer, Vault

__all__ = [
    "Check",
    "Decision",
    "Finding",
    "Guardrails",
    "Outcome",
    "Policy",
    "Rule",
    "StreamRestorer",
    "Vault",
    "Where",
    "check",
    "default_guardrails",
    "parse_policy",
]
