"""Evaluators: what they receive, what they return, and the registry plugins fill.

An evaluator is a function ``score(sample, options) -> Score`` (or a coroutine function, for
evaluators that call models), registered under a name through the ``register_evaluators`` hook.
Experiments and the CI gate name evaluators in their config::

    evaluators:
      - type: contains          # the registered name
        name: mentions-paris    # the score's name (default: the type)
        value: [Paris, paris]   # options, checked by the evaluator
        threshold: 1            # a score passes when value >= threshold (default per evaluator)

``type: python`` with ``function: module:function`` runs any function of that shape.
``per_item: true`` takes the options from each item instead (``metadata.assert.<name>``), for
suites whose checks differ per item (e.g. imported from promptfoo).
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pilothouse.errors import BadRequest

if TYPE_CHECKING:
    from pilothouse.evals.models import ModelClient


@dataclass
class Sample:
    """One target answer to score, with the dataset item it answers."""

    input: Any
    output: Any
    expected: Any = None
    context: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    latency_ms: float | None = None
    cost_usd: float | None = None
    #: how evaluators that call models reach them (the gateway in-process); None when offline
    models: ModelClient | None = None

    @property
    def text(self) -> str:
        """The output as text (``content`` of a message, JSON of anything else)."""
        return as_text(self.output)

    @property
    def expected_text(self) -> str:
        return as_text(self.expected)


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return str(value["content"])
    import orjson

    return orjson.dumps(value).decode()


@dataclass
class Score:
    """An evaluator's verdict: a number (usually 0..1), pass/fail, and why.

    ``error`` marks a score that could not be computed (e.g. a judge kept answering garbage):
    it counts as neither passed nor failed and is left out of means, never a NaN.
    """

    value: float | None
    passed: bool | None = None
    reason: str = ""
    error: str | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


ScoreFunction = Callable[[Sample, Mapping[str, Any]], "Score | Awaitable[Score]"]


@dataclass(frozen=True)
class Evaluator:
    """A registered evaluator: its name, function, default threshold and documentation."""

    name: str
    score: ScoreFunction
    description: str
    #: option name -> what it means (for the generated reference)
    options: Mapping[str, str] = field(default_factory=dict)
    threshold: float = 1.0
    #: deterministic, reference (text metrics), model (embeddings, judges) or custom
    kind: str = "deterministic"


@dataclass(frozen=True)
class EvaluatorSpec:
    """One evaluator as configured: which one, the score's name, its options and threshold."""

    evaluator: Evaluator
    name: str
    options: Mapping[str, Any]
    threshold: float

    async def run(self, sample: Sample) -> Score | None:
        """Score ``sample``; any exception becomes a per-item error, never a crash.

        With ``per_item: true`` the options come from the item (``metadata.assert.<name>``,
        merged over the config's) and items that do not list this evaluator get no score.
        """
        options, threshold = self.options, self.threshold
        if options.get("per_item"):
            own = (sample.metadata.get("assert") or {}).get(self.name)
            if not isinstance(own, Mapping):
                return None
            options = {k: v for k, v in {**options, **own}.items() if k != "per_item"}
            threshold = float(options.pop("threshold", threshold))
        try:
            result = self.evaluator.score(sample, options)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:  # noqa: BLE001 - a broken evaluator is a per-item error
            return Score(None, None, error=f"{type(exc).__name__}: {exc}")
        if not isinstance(result, Score):
            return Score(None, None, error=f"evaluator returned {type(result).__name__}")
        return finish(result, threshold)


def finish(score: Score, threshold: float) -> Score:
    """Fill ``passed`` from the threshold; turn NaN and infinities into an error."""
    if score.value is not None:
        if isinstance(score.value, bool):
            score.value = 1.0 if score.value else 0.0
        if not isinstance(score.value, int | float) or not math.isfinite(score.value):
            return Score(None, None, score.reason, f"not a finite number: {score.value!r}")
        score.value = float(score.value)
    if score.error is not None:
        score.passed = None
    elif score.passed is None and score.value is not None:
        score.passed = score.value >= threshold
    return score


def load_function(ref: str) -> Callable[..., Any]:
    """``package.module:function`` (or ``:Class.method``), imported."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise BadRequest(f"{ref!r}: expected 'module:function'", param="function")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise BadRequest(f"{ref!r} cannot be loaded: {exc}", param="function") from None
    if inspect.isclass(found):
        found = found()
    if not callable(found):
        raise BadRequest(f"{ref!r} is not callable", param="function")
    result: Callable[..., Any] = found
    return result


class Evaluators:
    """Evaluators by name, as registered through the ``register_evaluators`` hook."""

    def __init__(self, found: list[Evaluator]) -> None:
        self.by_name: dict[str, Evaluator] = {}
        for evaluator in found:
            # Later plugins are called first: the first registration of a name wins.
            self.by_name.setdefault(evaluator.name, evaluator)

    @classmethod
    def from_plugins(cls, plugins: Any) -> Evaluators:
        found: list[Evaluator] = []
        plugins.hook.register_evaluators(register=found.append)
        return cls(found)

    def get(self, name: str) -> Evaluator:
        found = self.by_name.get(name)
        if found is None:
            known = ", ".join(sorted(self.by_name))
            raise BadRequest(f"unknown evaluator {name!r}; known: {known}", param="type")
        return found

    def spec(self, config: Any, where: str = "evaluators") -> EvaluatorSpec:
        """An evaluator from its config object (or its bare name)."""
        if isinstance(config, str):
            config = {"type": config}
        if not isinstance(config, Mapping) or not isinstance(config.get("type"), str):
            raise BadRequest(f"{where}: expected an object with 'type'", param=where)
        evaluator = self.get(config["type"])
        options = {k: v for k, v in config.items() if k not in ("type", "name", "threshold")}
        name = config.get("name") or evaluator.name
        threshold = config.get("threshold", evaluator.threshold)
        if not isinstance(name, str) or not isinstance(threshold, int | float):
            raise BadRequest(f"{where}: name is a string, threshold a number", param=where)
        return EvaluatorSpec(evaluator, name, options, float(threshold))

    def specs(self, configs: Any) -> list[EvaluatorSpec]:
        if not isinstance(configs, list) or not configs:
            raise BadRequest("evaluators: expected a non-empty list", param="evaluators")
        out = [self.spec(c, f"evaluators[{i}]") for i, c in enumerate(configs)]
        names = [s.name for s in out]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise BadRequest(
                f"two evaluators are named {duplicate!r}: give one a 'name'", param="evaluators"
            )
        return out

    def reference(self) -> list[dict[str, Any]]:
        """Every evaluator with its documentation (for the API and the docs)."""
        return [
            {
                "name": e.name,
                "kind": e.kind,
                "description": e.description,
                "threshold": e.threshold,
                "options": dict(e.options),
            }
            for e in sorted(self.by_name.values(), key=lambda e: e.name)
        ]
