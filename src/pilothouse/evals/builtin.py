"""Built-in evaluators, registered through ``register_evaluators`` like any plugin's.

Options default to the dataset item's ``expected`` where a reference is needed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import jsonschema
import orjson
from rapidfuzz.distance import Levenshtein

from pilothouse.evals.evaluators import Evaluator, Sample, Score, as_text, load_function
from pilothouse.hookspecs import hookimpl


def _reference(sample: Sample, options: Mapping[str, Any], key: str = "value") -> Any:
    value = options.get(key, sample.expected)
    if value is None:
        raise ValueError(f"no '{key}' option and the item has no expected output")
    return value


def _norm(text: str, options: Mapping[str, Any]) -> str:
    if options.get("strip", True):
        text = text.strip()
    if options.get("ignore_case", False):
        text = text.casefold()
    return text


def equals(sample: Sample, options: Mapping[str, Any]) -> Score:
    want = _norm(as_text(_reference(sample, options)), options)
    ok = _norm(sample.text, options) == want
    return Score(1.0 if ok else 0.0, reason="" if ok else f"expected {want[:200]!r}")


def _contains(sample: Sample, options: Mapping[str, Any], fold: bool) -> Score:
    wanted = _reference(sample, options)
    needles = [as_text(v) for v in wanted] if isinstance(wanted, list) else [as_text(wanted)]
    text = sample.text.casefold() if fold else sample.text
    found = [n for n in needles if (n.casefold() if fold else n) in text]
    mode = options.get("mode", "any")
    if mode not in ("any", "all"):
        raise ValueError("mode is 'any' or 'all'")
    ok = bool(found) if mode == "any" else len(found) == len(needles)
    missing = [n for n in needles if n not in found]
    return Score(1.0 if ok else 0.0, reason="" if ok else f"missing {missing[:5]!r}")


def contains(sample: Sample, options: Mapping[str, Any]) -> Score:
    return _contains(sample, options, fold=False)


def icontains(sample: Sample, options: Mapping[str, Any]) -> Score:
    return _contains(sample, options, fold=True)


@lru_cache(maxsize=256)
def _pattern(pattern: str, flags: str) -> re.Pattern[str]:
    value = 0
    for flag in flags:
        value |= {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}[flag]
    return re.compile(pattern, value)


def regex(sample: Sample, options: Mapping[str, Any]) -> Score:
    pattern = _pattern(str(options["pattern"]), str(options.get("flags", "")))
    ok = pattern.search(sample.text) is not None
    return Score(1.0 if ok else 0.0, reason="" if ok else f"no match for {pattern.pattern!r}")


def starts_with(sample: Sample, options: Mapping[str, Any]) -> Score:
    prefix = as_text(_reference(sample, options))
    text = sample.text.lstrip() if options.get("strip", True) else sample.text
    ok = text.startswith(prefix)
    return Score(1.0 if ok else 0.0, reason="" if ok else f"does not start with {prefix!r}")


def _json_of(sample: Sample) -> Any:
    if isinstance(sample.output, dict | list) and not (
        isinstance(sample.output, dict) and "content" in sample.output
    ):
        return sample.output
    text = sample.text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.DOTALL)
    return orjson.loads(fenced.group(1) if fenced else text)


def is_json(sample: Sample, options: Mapping[str, Any]) -> Score:
    try:
        _json_of(sample)
    except orjson.JSONDecodeError as exc:
        return Score(0.0, reason=f"not JSON: {exc}")
    return Score(1.0)


def _embedded_json(text: str) -> Any:
    """The first JSON object or array inside ``text``, or ValueError."""
    decoder = json.JSONDecoder()
    for i, char in enumerate(text):
        if char in "{[":
            try:
                return decoder.raw_decode(text, i)[0]
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON object or array in the output")


def contains_json(sample: Sample, options: Mapping[str, Any]) -> Score:
    try:
        value = _embedded_json(sample.text)
    except ValueError as exc:
        return Score(0.0, reason=str(exc))
    schema = options.get("schema")
    if schema:
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(value))
        if errors:
            return Score(0.0, reason=f"embedded JSON: {errors[0].message}")
    return Score(1.0)


def json_schema(sample: Sample, options: Mapping[str, Any]) -> Score:
    schema = options["schema"]
    try:
        value = _json_of(sample)
    except orjson.JSONDecodeError as exc:
        return Score(0.0, reason=f"not JSON: {exc}")
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(value), key=str)
    if errors:
        first = errors[0]
        where = "/".join(map(str, first.absolute_path)) or "(root)"
        return Score(0.0, reason=f"{where}: {first.message}")
    return Score(1.0)


def similarity(sample: Sample, options: Mapping[str, Any]) -> Score:
    want = _norm(as_text(_reference(sample, options)), options)
    got = _norm(sample.text, options)
    ratio = Levenshtein.normalized_similarity(got, want)
    return Score(ratio, reason=f"similarity {ratio:.3f}")


def levenshtein(sample: Sample, options: Mapping[str, Any]) -> Score:
    want = _norm(as_text(_reference(sample, options)), options)
    distance = Levenshtein.distance(_norm(sample.text, options), want)
    limit = options.get("max_distance", 0)
    return Score(
        float(distance), passed=distance <= limit, reason=f"distance {distance} (max {limit})"
    )


def _bounds(value: float, options: Mapping[str, Any], unit: str) -> Score:
    low, high = options.get("min"), options.get("max")
    ok = (low is None or value >= low) and (high is None or value <= high)
    return Score(float(value), passed=ok, reason=f"{value:g} {unit} (bounds {low}..{high})")


def word_count(sample: Sample, options: Mapping[str, Any]) -> Score:
    return _bounds(len(sample.text.split()), options, "words")


def length(sample: Sample, options: Mapping[str, Any]) -> Score:
    return _bounds(len(sample.text), options, "characters")


def latency(sample: Sample, options: Mapping[str, Any]) -> Score:
    if sample.latency_ms is None:
        raise ValueError("the target reported no latency")
    limit = float(options["max_ms"])
    return Score(
        sample.latency_ms,
        passed=sample.latency_ms <= limit,
        reason=f"{sample.latency_ms:.1f} ms (max {limit:g})",
    )


def cost(sample: Sample, options: Mapping[str, Any]) -> Score:
    if sample.cost_usd is None:
        raise ValueError("the target reported no cost (unknown price?)")
    limit = float(options["max_usd"])
    return Score(
        sample.cost_usd,
        passed=sample.cost_usd <= limit,
        reason=f"${sample.cost_usd:.6f} (max ${limit:g})",
    )


@lru_cache(maxsize=1)
def _rouge() -> Any:
    try:
        from rouge_score import rouge_scorer  # type: ignore[import-untyped]
    except ImportError:
        raise RuntimeError("rouge-l needs 'pip install pilothouse[metrics]'") from None
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(sample: Sample, options: Mapping[str, Any]) -> Score:
    want = as_text(_reference(sample, options))
    score = _rouge().score(want, sample.text)["rougeL"].fmeasure
    return Score(float(score), reason=f"ROUGE-L F1 {score:.3f}")


def bleu(sample: Sample, options: Mapping[str, Any]) -> Score:
    try:
        import sacrebleu
    except ImportError:
        raise RuntimeError("bleu needs 'pip install pilothouse[metrics]'") from None
    wanted = _reference(sample, options)
    refs = [as_text(r) for r in wanted] if isinstance(wanted, list) else [as_text(wanted)]
    result = sacrebleu.sentence_bleu(sample.text, refs)
    value = float(result.score) / 100.0
    return Score(value, reason=f"BLEU {result.score:.1f}")


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


@lru_cache(maxsize=2)
def _sentence_model(name: str) -> Any:
    try:
        from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]
    except ImportError:
        raise RuntimeError(
            "backend sentence-transformers needs 'pip install pilothouse[ml]'"
        ) from None
    return SentenceTransformer(name)


async def embedding_similarity(sample: Sample, options: Mapping[str, Any]) -> Score:
    want = as_text(_reference(sample, options))
    backend = options.get("backend", "gateway")
    if backend == "sentence-transformers":
        model = _sentence_model(str(options.get("model", "all-MiniLM-L6-v2")))
        vectors = [list(map(float, v)) for v in model.encode([sample.text, want])]
        value = cosine(vectors[0], vectors[1])
        return Score(value, reason=f"cosine {value:.3f}")
    if backend != "gateway":
        raise ValueError("backend is 'gateway' or 'sentence-transformers'")
    if sample.models is None:
        raise RuntimeError("no gateway to compute embeddings with")
    name = options.get("model") or sample.models.runtime.settings.evals_embedding_model
    vectors, answer = await sample.models.embed(str(name), [sample.text, want])
    value = cosine(vectors[0], vectors[1])
    return Score(
        value, reason=f"cosine {value:.3f}", cost_usd=answer.cost_usd, latency_ms=answer.latency_ms
    )


def python(sample: Sample, options: Mapping[str, Any]) -> Any:
    """Run ``function`` (``module:function``) with the sample and the other options."""
    func = load_function(str(options["function"]))
    result = func(sample, {k: v for k, v in options.items() if k != "function"})
    if isinstance(result, bool | int | float):
        return Score(float(result))
    return result


def _e(
    name: str,
    score: Callable[..., Any],
    description: str,
    options: dict[str, str] | None = None,
    threshold: float = 1.0,
    kind: str = "deterministic",
) -> Evaluator:
    return Evaluator(name, score, description, options or {}, threshold, kind)


REFERENCE = "the reference (default: the item's expected output)"
TEXT_OPTIONS = {"value": REFERENCE, "strip": "strip spaces (default true)", "ignore_case": "bool"}

EVALUATORS = [
    _e("equals", equals, "Output equals the reference.", TEXT_OPTIONS),
    _e(
        "contains",
        contains,
        "Output contains the value (or any/all of a list).",
        {"value": REFERENCE + "; a string or a list", "mode": "any (default) or all"},
    ),
    _e(
        "icontains",
        icontains,
        "Like contains, ignoring case.",
        {"value": REFERENCE + "; a string or a list", "mode": "any (default) or all"},
    ),
    _e(
        "regex", regex, "Output matches a regular expression.", {"pattern": "regex", "flags": "ims"}
    ),
    _e("starts-with", starts_with, "Output starts with the value.", {"value": REFERENCE}),
    _e("is-json", is_json, "Output is valid JSON (a json code fence is accepted)."),
    _e(
        "json-schema",
        json_schema,
        "Output is JSON valid against a JSON Schema.",
        {"schema": "a JSON Schema"},
    ),
    _e(
        "contains-json",
        contains_json,
        "Output contains a JSON object or array (valid against schema, if given).",
        {"schema": "optional JSON Schema"},
    ),
    _e(
        "similarity",
        similarity,
        "Normalized Levenshtein similarity ratio (0..1) to the reference.",
        TEXT_OPTIONS,
        threshold=0.8,
    ),
    _e(
        "levenshtein",
        levenshtein,
        "Levenshtein edit distance to the reference; passes within max_distance.",
        {**TEXT_OPTIONS, "max_distance": "int (default 0)"},
    ),
    _e("word-count", word_count, "Number of words, within min/max.", {"min": "int", "max": "int"}),
    _e("length", length, "Number of characters, within min/max.", {"min": "int", "max": "int"}),
    _e(
        "latency", latency, "Target latency in ms; passes at or under max_ms.", {"max_ms": "number"}
    ),
    _e("cost", cost, "Target cost in USD; passes at or under max_usd.", {"max_usd": "number"}),
    _e(
        "rouge-l",
        rouge_l,
        "ROUGE-L F1 against the reference (rouge-score).",
        {"value": REFERENCE},
        threshold=0.5,
        kind="reference",
    ),
    _e(
        "bleu",
        bleu,
        "Sentence BLEU / 100 against one or more references (sacrebleu).",
        {"value": REFERENCE + "; a string or a list"},
        threshold=0.3,
        kind="reference",
    ),
    _e(
        "embedding-similarity",
        embedding_similarity,
        "Cosine similarity of output and reference embeddings.",
        {
            "value": REFERENCE,
            "backend": "gateway (default, a /v1/embeddings model) or sentence-transformers",
            "model": "embedding model (default PILOTHOUSE_EVALS_EMBEDDING_MODEL)",
        },
        threshold=0.8,
        kind="model",
    ),
    _e(
        "python",
        python,
        "A custom function 'module:function' of (sample, options) returning a Score or number.",
        {"function": "module:function", "...": "passed to the function"},
        kind="custom",
    ),
]


@hookimpl
def register_evaluators(register: Callable[[Evaluator], None]) -> None:
    for evaluator in EVALUATORS:
        register(evaluator)
    from pilothouse.evals.judge import JUDGE

    register(JUDGE)
