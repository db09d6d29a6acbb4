"""The CI gate: ``pilothouse eval run eval.yaml`` runs a suite and checks its thresholds.

Example ``eval.yaml``::

    dataset:
      name: capitals
      file: capitals.jsonl        # pushed first (a new version only if the file changed)
    prompts:                      # optional: saved to the registry first (new version if changed)
      - {name: qa, type: chat, template: [{role: user, content: "{{question}}"}]}
    targets:
      - {name: baseline, type: prompt, prompt: qa, label: production, model: gpt-4o-mini}
      - {name: candidate, type: prompt, prompt: qa, label: latest, model: gpt-4o-mini}
    evaluators:
      - {type: icontains}
      - {type: similarity, threshold: 0.8}
    config: {concurrency: 8, retries: 2}
    thresholds:
      - {evaluator: icontains, min_pass_rate: 0.9}            # every target
      - {evaluator: similarity, target: candidate, min_mean: 0.7}
      - {evaluator: icontains, target: candidate, no_regression_vs: baseline}

Exit codes: 0 every threshold holds, 1 a threshold failed, 2 the config or the infrastructure
is broken (the CLI maps :class:`GateError` to 2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET

import yaml

from pilothouse.errors import PilothouseError
from pilothouse.evals import datasets as ds
from pilothouse.evals import experiments
from pilothouse.evals.targets import check_target
from pilothouse.prompts.registry import Actor

if TYPE_CHECKING:
    from pilothouse.runtime import Runtime

THRESHOLD_KEYS = {
    "evaluator",
    "target",
    "min_mean",
    "min_pass_rate",
    "max_errors",
    "no_regression_vs",
}
TOP_KEYS = {"dataset", "prompts", "targets", "evaluators", "config", "thresholds", "project"}


class GateError(Exception):
    """The suite could not run: bad config, missing file, broken infrastructure (exit 2)."""


@dataclass
class Check:
    name: str
    target: str
    passed: bool
    detail: str


@dataclass
class Outcome:
    experiments: dict[str, int] = field(default_factory=dict)  # target name -> experiment id
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    comparisons: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "experiments": self.experiments,
            "summaries": self.summaries,
            "comparisons": self.comparisons,
            "checks": [vars(c) for c in self.checks],
        }


def load(path: Path) -> dict[str, Any]:
    """The config file, checked for shape; GateError says what is wrong."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise GateError(f"{path}: {exc}") from None
    if not isinstance(doc, dict):
        raise GateError(f"{path}: expected a mapping")
    unknown = set(doc) - TOP_KEYS
    if unknown:
        raise GateError(f"{path}: unknown key {sorted(unknown)[0]!r}")
    dataset = doc.get("dataset")
    if isinstance(dataset, str):
        doc["dataset"] = dataset = {"name": dataset}
    if not isinstance(dataset, dict) or not isinstance(dataset.get("name"), str):
        raise GateError(f"{path}: dataset needs a name")
    if dataset.get("file"):
        dataset["file"] = str((path.parent / str(dataset["file"])).resolve())
    targets = doc.get("targets")
    if not isinstance(targets, list) or not targets:
        raise GateError(f"{path}: targets: expected a non-empty list")
    names = []
    for i, target in enumerate(targets):
        if not isinstance(target, dict) or not isinstance(target.get("name"), str):
            raise GateError(f"{path}: targets[{i}] needs a name")
        try:
            check_target({k: v for k, v in target.items() if k != "name"})
        except PilothouseError as exc:
            raise GateError(f"{path}: targets[{i}]: {exc.detail}") from None
        names.append(target["name"])
    if len(set(names)) != len(names):
        raise GateError(f"{path}: target names must be unique")
    for i, threshold in enumerate(doc.get("thresholds") or []):
        if not isinstance(threshold, dict) or not isinstance(threshold.get("evaluator"), str):
            raise GateError(f"{path}: thresholds[{i}] needs an evaluator")
        unknown = set(threshold) - THRESHOLD_KEYS
        if unknown:
            raise GateError(f"{path}: thresholds[{i}]: unknown key {sorted(unknown)[0]!r}")
        for ref in (threshold.get("target"), threshold.get("no_regression_vs")):
            if ref is not None and ref not in names:
                raise GateError(f"{path}: thresholds[{i}]: no target named {ref!r}")
    return doc


def _project(runtime: Runtime, doc: dict[str, Any]) -> int:
    from pilothouse.store import identity

    name = doc.get("project", "default")
    with runtime.db.read() as conn:
        try:
            return int(identity.project_by_name(conn, str(name))["id"])
        except PilothouseError as exc:
            raise GateError(
                f"{exc.detail} in this store: start the server once, or run with --ephemeral"
            ) from None


def _prepare(runtime: Runtime, project_id: int, doc: dict[str, Any]) -> None:
    from pilothouse.evals.api import datasets_of
    from pilothouse.prompts.api import registry_of
    from pilothouse.store import evals as store

    registry = registry_of(runtime)
    for i, prompt in enumerate(doc.get("prompts") or []):
        if not isinstance(prompt, dict) or "name" not in prompt or "template" not in prompt:
            raise GateError(f"prompts[{i}]: needs name and template")
        registry.save(
            project_id,
            str(prompt["name"]),
            actor=Actor("pilothouse eval run"),
            template=prompt["template"],
            prompt_type=prompt.get("type", "chat"),
            template_format=prompt.get("template_format", "mustache"),
            config=prompt.get("config"),
            labels=prompt.get("labels", []),
            message="from eval config",
        )
    dataset = doc["dataset"]
    datasets = datasets_of(runtime)
    with runtime.db.read() as conn:
        exists = store.find_dataset(conn, project_id, dataset["name"]) is not None
    items: list[Any] = []
    if dataset.get("file"):
        path = Path(dataset["file"])
        try:
            items = ds.read_file(path.name, path.read_text())
        except OSError as exc:
            raise GateError(f"dataset file: {exc}") from None
    author, message = "pilothouse eval run", "from eval config"
    if not exists and not dataset.get("file"):
        raise GateError(f"dataset {dataset['name']!r} does not exist: give its 'file'")
    if dataset.get("file") and not items:
        raise GateError(f"dataset file {dataset['file']} holds no items")
    if not exists:
        datasets.create(project_id, dataset["name"], items=items, author=author, message=message)
    elif dataset.get("file"):
        datasets.write(
            project_id, dataset["name"], items, replace=True, author=author, message=message
        )


def run(
    runtime: Runtime,
    doc: dict[str, Any],
    progress: Callable[[str], Callable[[int, int], None] | None] = lambda name: None,
) -> Outcome:
    """Push the dataset (and prompts), run every target, compare, check thresholds."""
    outcome = Outcome()
    try:
        project_id = _project(runtime, doc)
        _prepare(runtime, project_id, doc)
        evaluators = doc.get("evaluators")
        for target in doc["targets"]:
            name = target["name"]
            row = experiments.create(
                runtime,
                project_id,
                dataset=doc["dataset"]["name"],
                dataset_version=doc["dataset"].get("version"),
                target={k: v for k, v in target.items() if k != "name"},
                evaluators=evaluators,
                name=name,
                config=doc.get("config"),
                created_by="pilothouse eval run",
            )
            outcome.experiments[name] = row["id"]
            summary = experiments.run_sync(runtime, row["id"], progress(name))
            outcome.summaries[name] = summary
            if summary["results"] and summary["target_errors"] == summary["results"]:
                # Not a quality verdict: the target cannot be reached or run at all.
                raise GateError(
                    f"target {name!r} failed on every item: {_first_error(runtime, row['id'])}"
                )
    except PilothouseError as exc:
        raise GateError(exc.detail) from None
    for threshold in doc.get("thresholds") or []:
        outcome.checks.extend(_check(runtime, outcome, threshold))
    return outcome


def _first_error(runtime: Runtime, experiment_id: int) -> str:
    from pilothouse.store import evals as store

    with runtime.db.read() as conn:
        rows = store.results_of(conn, experiment_id)
    return next((str(r["error"]) for r in rows if r["error"]), "")


def _check(runtime: Runtime, outcome: Outcome, threshold: dict[str, Any]) -> list[Check]:
    evaluator = threshold["evaluator"]
    names = [threshold["target"]] if threshold.get("target") else list(outcome.experiments)
    checks = []
    for name in names:
        stats = outcome.summaries[name]["evaluators"].get(evaluator)
        if stats is None:
            raise GateError(f"thresholds: no evaluator named {evaluator!r} in the suite")
        label = f"{evaluator}"
        if "min_mean" in threshold:
            mean, floor = stats["mean"], float(threshold["min_mean"])
            ok = mean is not None and mean >= floor
            checks.append(Check(f"{label} mean >= {floor:g}", name, ok, f"mean {mean}"))
        if "min_pass_rate" in threshold:
            rate, floor = stats["pass_rate"], float(threshold["min_pass_rate"])
            ok = rate is not None and rate >= floor
            checks.append(Check(f"{label} pass rate >= {floor:g}", name, ok, f"pass rate {rate}"))
        if "max_errors" in threshold:
            limit = int(threshold["max_errors"])
            ok = stats["errors"] <= limit
            checks.append(
                Check(f"{label} errors <= {limit}", name, ok, f"{stats['errors']} error(s)")
            )
        baseline = threshold.get("no_regression_vs")
        if baseline and baseline != name:
            key = f"{name} vs {baseline}"
            if key not in outcome.comparisons:
                result = experiments.compare(
                    runtime, outcome.experiments[baseline], outcome.experiments[name]
                )
                outcome.comparisons[key] = result["candidates"][0]
            found = outcome.comparisons[key]["evaluators"].get(evaluator, {})
            regressed = found.get("verdict") == "regression"
            checks.append(
                Check(
                    f"{label} no significant regression vs {baseline}",
                    name,
                    not regressed,
                    f"wins {found.get('wins')}, losses {found.get('losses')}, ties "
                    f"{found.get('ties')}, mean diff {found.get('mean_diff')}, "
                    f"p={found.get('p_value')}",
                )
            )
    return checks


# --- reports ----------------------------------------------------------------------------------


def junit(outcome: Outcome) -> bytes:
    """JUnit XML: one test suite per target, one test case per check."""
    root = ET.Element("testsuites", name="pilothouse eval")
    for target in outcome.experiments:
        checks = [c for c in outcome.checks if c.target == target]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=target,
            tests=str(len(checks)),
            failures=str(sum(1 for c in checks if not c.passed)),
            errors="0",
        )
        for check in checks:
            case = ET.SubElement(suite, "testcase", classname=target, name=check.name)
            if not check.passed:
                ET.SubElement(case, "failure", message=check.detail).text = check.detail
            else:
                ET.SubElement(case, "system-out").text = check.detail
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown(outcome: Outcome) -> str:
    """A summary for a pull-request comment."""
    lines = [f"## Evaluation {'passed ✅' if outcome.passed else 'failed ❌'}", ""]
    failed = [c for c in outcome.checks if not c.passed]
    if failed:
        lines += ["**Failed checks**", ""]
        lines += [f"- `{c.target}`: {c.name} — {c.detail}" for c in failed]
        lines.append("")
    lines += [
        "| target | evaluator | mean (95% CI) | pass rate | errors |",
        "|---|---|---|---|---|",
    ]
    for target, summary in outcome.summaries.items():
        for name, s in summary["evaluators"].items():
            ci = s["ci95"]
            interval = f" ({_fmt(ci[0])}-{_fmt(ci[1])})" if ci else ""
            lines.append(
                f"| {target} | {name} | {_fmt(s['mean'])}{interval} | {_fmt(s['pass_rate'])} "
                f"| {s['errors']} |"
            )
    for key, comparison in outcome.comparisons.items():
        lines += [
            "",
            f"**{key}**",
            "",
            "| evaluator | wins | losses | ties | mean diff | p | verdict |",
        ]
        lines.append("|---|---|---|---|---|---|---|")
        for name, c in comparison["evaluators"].items():
            lines.append(
                f"| {name} | {c['wins']} | {c['losses']} | {c['ties']} | {c['mean_diff']:+.3f} "
                f"| {c['p_value']:.3f} | {c['verdict']} |"
            )
    lines += ["", "| check | target | result |", "|---|---|---|"]
    lines += [
        f"| {c.name} | {c.target} | {'pass' if c.passed else 'FAIL'} |" for c in outcome.checks
    ]
    return "\n".join(lines) + "\n"
