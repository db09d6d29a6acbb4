"""Import a promptfoo config (``promptfooconfig.yaml``) as an ``eval.yaml`` and a dataset.

The common subset converts: prompts (strings, ``{id, label, raw}`` objects, ``file://`` text
or JSON chat files), OpenAI-compatible providers (``openai:<model>``, ``openai:chat:<model>``,
objects with ``id`` and ``config``; the model name becomes a gateway model alias), tests with
``vars``, ``description``, ``metadata`` and asserts (equals, contains, icontains, regex,
starts-with, is-json, contains-json, similar, levenshtein, llm-rubric, cost, latency), and
``defaultTest`` vars and asserts. Each test becomes a dataset item; its asserts become
``per_item`` evaluators reading their options from the item. Anything else is listed in
:attr:`Imported.unsupported` with where it was found; nothing is dropped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from pilothouse.evals.gate import GateError

KNOWN_TOP = {"description", "prompts", "providers", "tests", "defaultTest"}
KNOWN_TEST = {"vars", "assert", "description", "metadata"}
KNOWN_ASSERT = {"type", "value", "threshold"}
#: promptfoo assert type -> (evaluator type, option the assert's ``value`` goes to, option the
#: assert's ``threshold`` goes to)
ASSERTS: dict[str, tuple[str, str | None, str | None]] = {
    "equals": ("equals", "value", None),
    "contains": ("contains", "value", None),
    "icontains": ("icontains", "value", None),
    "contains-any": ("contains", "value", None),
    "contains-all": ("contains", "value", None),
    "icontains-any": ("icontains", "value", None),
    "icontains-all": ("icontains", "value", None),
    "regex": ("regex", "pattern", None),
    "starts-with": ("starts-with", "value", None),
    "is-json": ("is-json", "schema", None),
    "contains-json": ("contains-json", "schema", None),
    "similar": ("embedding-similarity", "value", "threshold"),
    "levenshtein": ("levenshtein", "value", "max_distance"),
    "llm-rubric": ("llm-judge", "criteria", "threshold"),
    "cost": ("cost", None, "max_usd"),
    "latency": ("latency", None, "max_ms"),
}
DEFAULT_THRESHOLDS = {"similar": 0.75, "llm-rubric": 0.5}
PROVIDER = re.compile(r"^openai:(?:chat:)?([^:].*)$")


@dataclass
class Imported:
    """The converted suite: ``config`` for eval.yaml, dataset ``items``, and what did not fit."""

    config: dict[str, Any]
    items: list[dict[str, Any]]
    unsupported: list[str] = field(default_factory=list)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "promptfoo"


class Converter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.parent
        self.unsupported: list[str] = []

    def note(self, where: str, what: str) -> None:
        self.unsupported.append(f"{where}: {what}")

    def _file(self, ref: str, where: str) -> str | None:
        target = self.base / ref.removeprefix("file://")
        if any(c in target.name for c in "*?[") or "://" in ref.removeprefix("file://"):
            self.note(where, f"{ref}: globs and non-file references are not supported")
            return None
        try:
            return target.read_text()
        except OSError as exc:
            self.note(where, f"{ref}: {exc.strerror or exc}")
            return None

    def prompt(self, raw: Any, index: int, stem: str) -> dict[str, Any] | None:
        where = f"prompts[{index}]"
        label = None
        if isinstance(raw, dict):
            unknown = set(raw) - {"id", "label", "raw"}
            if unknown:
                self.note(where, f"fields {sorted(unknown)} are not supported")
            label = raw.get("label")
            raw = raw.get("raw", raw.get("id"))
        if not isinstance(raw, str):
            self.note(where, "expected a string, an object with raw, or file://")
            return None
        text: str | None = raw
        is_json = False
        if raw.startswith("file://"):
            ref = raw.split(":", 2)
            if len(ref) > 2 and not ref[2].startswith("//"):
                self.note(where, f"{raw}: function prompts are not supported")
                return None
            text = self._file(raw, where)
            is_json = raw.endswith(".json")
        if text is None:
            return None
        name = f"promptfoo/{_slug(stem)}/{_slug(label) if label else index + 1}"
        if is_json or text.lstrip().startswith("["):
            try:
                messages = orjson.loads(text)
            except orjson.JSONDecodeError:
                messages = None
            if isinstance(messages, list) and all(isinstance(m, dict) for m in messages):
                return {"name": name, "type": "chat", "template_format": "jinja2",
                        "template": messages}  # fmt: skip
        return {"name": name, "type": "text", "template_format": "jinja2", "template": text}

    def provider(self, raw: Any, index: int) -> tuple[str, str, dict[str, Any]] | None:
        where = f"providers[{index}]"
        config: dict[str, Any] = {}
        label = None
        if isinstance(raw, dict):
            unknown = set(raw) - {"id", "config", "label"}
            if unknown:
                self.note(where, f"fields {sorted(unknown)} are not supported")
            config = dict(raw.get("config") or {})
            label = raw.get("label")
            raw = raw.get("id")
        if not isinstance(raw, str):
            self.note(where, "expected a provider id")
            return None
        found = PROVIDER.match(raw)
        if found is None:
            self.note(where, f"{raw}: only OpenAI-compatible providers (openai:...) are supported")
            return None
        params = {}
        for key, value in config.items():
            if key in ("temperature", "max_tokens", "top_p", "seed", "stop", "response_format"):
                params[key] = value
            else:
                self.note(
                    f"{where}.config.{key}", "not supported (configure upstreams in the gateway)"
                )
        model = found.group(1)
        return str(label or model), model, params

    def asserts(self, raw: Any, where: str) -> list[tuple[str, dict[str, Any]]]:
        """(evaluator type, options) of each supported assert."""
        out: list[tuple[str, dict[str, Any]]] = []
        if raw is None:
            return out
        if not isinstance(raw, list):
            self.note(where, "expected a list")
            return out
        for i, item in enumerate(raw):
            here = f"{where}[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("type"), str):
                self.note(here, "expected an object with a type")
                continue
            kind = item["type"]
            mapped = ASSERTS.get(kind)
            if mapped is None:
                self.note(here, f"assert type {kind!r} is not supported")
                continue
            for key in sorted(set(item) - KNOWN_ASSERT):
                self.note(f"{here}.{key}", "not supported")
            evaluator, value_key, threshold_key = mapped
            options: dict[str, Any] = {}
            value = item.get("value")
            if isinstance(value, str) and "{{" in value:
                self.note(f"{here}.value", "templated assert values are not supported")
                continue
            if value is not None:
                if value_key is None:
                    self.note(f"{here}.value", f"ignored by {kind!r}")
                else:
                    options[value_key] = value
            if kind in ("contains-all", "icontains-all"):
                options["mode"] = "all"
            threshold = item.get("threshold", DEFAULT_THRESHOLDS.get(kind))
            if threshold is not None:
                if threshold_key is None:
                    self.note(f"{here}.threshold", f"not supported for {kind!r}")
                elif threshold_key == "threshold":
                    options["threshold"] = threshold
                else:
                    options[threshold_key] = threshold
            if kind == "is-json" and value is not None:
                evaluator = "json-schema"
            if kind == "llm-rubric":
                options.update(rubric="custom", scale=[0, 1])
            out.append((evaluator, options))
        return out


def convert(path: Path) -> Imported:
    """The suite of the promptfoo config at ``path``; GateError if it cannot be read at all."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise GateError(f"{path}: {exc}") from None
    if not isinstance(doc, dict):
        raise GateError(f"{path}: expected a mapping")
    c = Converter(path)
    stem = path.stem.removesuffix("config").rstrip("._-") or path.parent.name
    for key in sorted(set(doc) - KNOWN_TOP):
        c.note(key, "not supported")
    raw_prompts = doc.get("prompts") or []
    raw_prompts = raw_prompts if isinstance(raw_prompts, list) else [raw_prompts]
    prompts = [p for i, raw in enumerate(raw_prompts) if (p := c.prompt(raw, i, stem))]
    raw_providers = doc.get("providers") or []
    raw_providers = raw_providers if isinstance(raw_providers, list) else [raw_providers]
    providers = [v for i, raw in enumerate(raw_providers) if (v := c.provider(raw, i))]
    default = doc.get("defaultTest") or {}
    if not isinstance(default, dict):
        c.note("defaultTest", "expected an object")
        default = {}
    for key in sorted(set(default) - {"vars", "assert"}):
        c.note(f"defaultTest.{key}", "not supported")
    default_vars = default.get("vars") or {}
    evaluators: list[dict[str, Any]] = []
    for kind, options in c.asserts(default.get("assert"), "defaultTest.assert"):
        names = [e["name"] for e in evaluators]
        name = kind if kind not in names else f"{kind}-{names.count(kind) + 1}"
        evaluators.append({"type": kind, "name": f"all:{name}", **options})
    items: list[dict[str, Any]] = []
    per_item: dict[str, str] = {}
    raw_tests = doc.get("tests") or []
    if isinstance(raw_tests, str):
        c.note("tests", f"{raw_tests}: tests from files are not supported; list them inline")
        raw_tests = []
    for i, test in enumerate(raw_tests):
        where = f"tests[{i}]"
        if not isinstance(test, dict):
            c.note(where, "expected an object (tests from files are not supported)")
            continue
        for key in sorted(set(test) - KNOWN_TEST):
            c.note(f"{where}.{key}", "not supported")
        variables = {**default_vars, **(test.get("vars") or {})}
        assigned: dict[str, dict[str, Any]] = {}
        for kind, options in c.asserts(test.get("assert"), f"{where}.assert"):
            n = sum(1 for name in assigned if per_item.get(name) == kind)
            name = kind if n == 0 else f"{kind}-{n + 1}"
            per_item[name] = kind
            assigned[name] = options
        metadata = dict(test.get("metadata") or {})
        if test.get("description"):
            metadata["description"] = test["description"]
        metadata["assert"] = assigned
        items.append({"key": f"test-{i + 1}", "input": variables, "metadata": metadata})
    evaluators += [
        {"type": kind, "name": name, "per_item": True} for name, kind in per_item.items()
    ]
    if not prompts:
        c.note("prompts", "no prompt could be converted")
    if not providers:
        c.note("providers", "no provider could be converted")
    targets = [
        {"name": f"{prompt['name'].rsplit('/', 1)[-1]}:{label}", "type": "prompt",
         "prompt": prompt["name"], "label": "latest", "model": model,
         **({"params": params} if params else {})}
        for prompt in prompts
        for label, model, params in providers
    ]  # fmt: skip
    config: dict[str, Any] = {
        "dataset": {"name": f"promptfoo-{_slug(stem)}", "file": f"{_slug(stem)}.jsonl"},
        "prompts": prompts,
        "targets": targets,
        "evaluators": evaluators,
        # promptfoo fails a test when any of its assertions fails.
        "thresholds": [{"evaluator": e["name"], "min_pass_rate": 1.0} for e in evaluators],
    }
    return Imported(config, items, c.unsupported)
