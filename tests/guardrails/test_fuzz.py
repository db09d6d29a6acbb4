"""No input makes a check raise: random Unicode through every built-in check and policy."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilothouse.guardrails import Vault, check, embeddings
from pilothouse.guardrails.engine import collect_checks
from pilothouse.guardrails.model import WHERES
from pilothouse.guardrails.rewrite import resolve_overlaps

CHECKS = collect_checks()
OPTIONS: dict[str, dict[str, Any]] = {
    "keywords": {"words": ["acme", "é"], "topics": {"t": ["x y"]}},
    "regex": {"patterns": {"N": r"\d+", "E": ""}},
    "max_length": {"max_chars": 5},
    "json_schema": {"schema": {"type": "object"}},
    "canary": {"tokens": ["ph-canary-0123456789abcdef"]},
    "topics": {
        "deny": {"t": {"description": "x y", "keywords": ["acme", "é"]}, "u": ["1"]},
        "allow": {"a": "billing and refunds"},
    },
    "groundedness": {"context": ["Some context: 42 things.\nAnother é line", "x"]},
}
# Text with the characters that trip up regexes and normalizers most.
TRICKY = st.text(
    alphabet=st.one_of(
        st.characters(),
        st.sampled_from(list("@.:-+/()[]{}<>$=_'\"`#%\\ \n\t0123456789")),
        st.sampled_from(
            ["\u200b", "\u202e", "\U000e0041", "\uff49", "\u0456", "€", "🎉", "\ufeff", "\x00"]
        ),
    ),
    max_size=300,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TRICKY)
def test_no_check_raises_and_offsets_are_valid(text: str) -> None:
    for name, c in CHECKS.items():
        for where in c.wheres:
            found = c.scan(text, where, {**c.defaults, **OPTIONS.get(name, {})})
            for f in found:
                assert 0 <= f.start <= f.end <= len(text)
                assert 0.0 <= f.score <= 1.0


def letter_embedder(texts: list[str]) -> list[list[float]]:
    """Deterministic vectors (letter counts), some of them all zero."""
    return [[float(t.lower().count(c)) for c in "aeiou1 "] for t in texts]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TRICKY, st.lists(TRICKY, max_size=3))
def test_embedding_paths_never_raise(text: str, context: list[str]) -> None:
    with embeddings.using(letter_embedder):
        for name in ("topics", "groundedness"):
            c = CHECKS[name]
            options = {**OPTIONS[name], "context": context or OPTIONS["groundedness"]["context"]}
            for f in c.scan(text, "output", options):
                assert 0 <= f.start <= f.end <= len(text)
                assert 0.0 <= f.score <= 1.0


@settings(max_examples=150, deadline=None)
@given(TRICKY, st.sampled_from(["default", "strict", "redact-pii", "monitor"]))
def test_policies_never_raise_and_pseudonyms_round_trip(text: str, policy: str) -> None:
    vault = Vault()
    for where in WHERES:
        decision = check(text, policy, where, vault)
        assert decision.verdict in ("allow", "flag", "modify", "block")
    pseudonymized = check(
        text, {"input": [{"check": "pii", "action": "pseudonymize"}]}, "input", vault
    )
    assert vault.restore(pseudonymized.text) == text or "<" in text


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50), st.floats(0, 1)), max_size=30))
def test_resolved_spans_never_overlap(raw: list[tuple[int, int, float]]) -> None:
    from pilothouse.guardrails import Finding

    spans = [Finding("x", "T", min(a, b), max(a, b), s) for a, b, s in raw]
    kept = resolve_overlaps(spans)
    for left, right in itertools.pairwise(kept):
        assert left.end <= right.start
