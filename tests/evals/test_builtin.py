"""The built-in evaluators, through the registry as experiments use them."""

from __future__ import annotations

import math
from typing import Any

import pytest

from pilothouse.evals import Evaluators, Sample, Score
from pilothouse.evals.evaluators import finish
from pilothouse.plugins import pm

REGISTRY = Evaluators.from_plugins(pm)


async def score(config: Any, output: Any, expected: Any = None, **more: Any) -> Score:
    sample = Sample(input={"q": "?"}, output=output, expected=expected, **more)
    result = await REGISTRY.spec(config).run(sample)
    assert result is not None
    return result


@pytest.mark.parametrize(
    ("config", "output", "expected", "passed"),
    [
        ("equals", " Paris ", "Paris", True),
        ("equals", "paris", "Paris", False),
        ({"type": "equals", "ignore_case": True}, "paris", "Paris", True),
        ({"type": "contains", "value": ["Lyon", "Paris"]}, "in Paris", None, True),
        ({"type": "contains", "value": ["Lyon", "Paris"], "mode": "all"}, "in Paris", None, False),
        ({"type": "icontains", "value": "PARIS"}, "in paris", None, True),
        ({"type": "regex", "pattern": r"^\d{3}$"}, "123", None, True),
        ({"type": "regex", "pattern": "abc", "flags": "i"}, "xABCx", None, True),
        ({"type": "starts-with", "value": "Yes"}, "  Yes, indeed", None, True),
        ("is-json", '```json\n{"a": 1}\n```', None, True),
        ("is-json", "{nope", None, False),
        (
            {"type": "json-schema", "schema": {"type": "object", "required": ["a"]}},
            '{"a":1}',
            None,
            True,
        ),
        (
            {"type": "json-schema", "schema": {"type": "object", "required": ["a"]}},
            "{}",
            None,
            False,
        ),
        ("similarity", "colour", "color", True),
        ("similarity", "abc", "xyz", False),
        ({"type": "levenshtein", "max_distance": 1}, "colour", "color", True),
        ({"type": "word-count", "min": 2, "max": 3}, "one two", None, True),
        ({"type": "length", "max": 3}, "four", None, False),
        ("rouge-l", "the cat sat on the mat", "the cat sat on the mat", True),
        ("rouge-l", "dogs bark", "the cat sat on the mat", False),
        ("bleu", "the cat sat on the mat", "the cat sat on the mat", True),
        ("bleu", "a dog", "the cat sat on the mat", False),
    ],
)
async def test_deterministic_and_reference_evaluators(config, output, expected, passed):
    result = await score(config, output, expected)
    assert result.error is None, result.error
    assert result.passed is passed, result.reason
    assert result.value is not None and math.isfinite(result.value)


async def test_latency_cost_and_missing_references_are_errors_not_crashes():
    assert (await score({"type": "latency", "max_ms": 10}, "x", latency_ms=5)).passed is True
    assert (await score({"type": "cost", "max_usd": 0.01}, "x", cost_usd=0.5)).passed is False
    missing = await score("equals", "x")
    assert missing.value is None and missing.passed is None
    assert "no 'value' option" in (missing.error or "")
    assert (await score({"type": "cost", "max_usd": 1}, "x")).error


def test_registry_checks_configs_and_never_keeps_nan():
    with pytest.raises(Exception, match="unknown evaluator 'nope'"):
        REGISTRY.spec({"type": "nope"})
    with pytest.raises(Exception, match="two evaluators are named 'equals'"):
        REGISTRY.specs(["equals", "equals"])
    assert finish(Score(float("nan")), 1.0).error == "not a finite number: nan"
    assert finish(Score(True), 1.0).value == 1.0
    reference = {e["name"]: e for e in REGISTRY.reference()}
    assert reference["similarity"]["threshold"] == 0.8 and reference["bleu"]["kind"] == "reference"


async def test_a_plugin_evaluator_replaces_a_builtin_and_custom_functions_load():
    from pilothouse.evals import Evaluator
    from pilothouse.hookspecs import hookimpl
    from pilothouse.plugins import make_plugin_manager

    class Plugin:
        @hookimpl
        def register_evaluators(self, register):
            register(Evaluator("equals", lambda s, o: Score(0.5), "always half"))

    manager = make_plugin_manager(load_entry_points=False)
    manager.register(Plugin())
    registry = Evaluators.from_plugins(manager)
    half = await registry.spec("equals").run(Sample("q", "a", "a"))
    assert half is not None and half.value == 0.5
    custom = await score({"type": "python", "function": "tests.evals.targets:has_digit"}, "r2d2")
    assert custom.passed is True and custom.reason == "digit"
    broken = await score({"type": "python", "function": "tests.evals.targets:nothing"}, "x")
    assert "cannot be loaded" in (broken.error or "")
