"""Evaluation-gated promotion: move a prompt label only when an evaluation suite passes.

A label (say ``production`` of prompt ``qa``) can be **protected** with a suite: an
``eval.yaml`` without ``targets`` (dataset, evaluators, thresholds, optional ``model`` and
``config``). Promoting ``--from staging --to production`` runs the suite with two targets,
``baseline`` (the version ``production`` points at now) and ``candidate`` (the version of
``staging``), and moves the label only if every threshold holds. Without thresholds, every
evaluator must show no significant regression of the candidate against the baseline. The label
move's reason names the experiments that justified it, so the prompt's history shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from pilothouse.errors import BadRequest, Conflict, Forbidden
from pilothouse.evals import gate
from pilothouse.prompts.api import registry_of
from pilothouse.prompts.registry import Actor
from pilothouse.store import evals as store
from pilothouse.store import prompts as prompt_store

if TYPE_CHECKING:
    from pilothouse.runtime import Runtime

SUITE_KEYS = gate.TOP_KEYS - {"targets", "prompts", "project"} | {"model"}


@dataclass
class Promotion:
    prompt: str
    source: str
    target: str
    from_version: int | None
    to_version: int
    moved: bool
    outcome: gate.Outcome

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "from_label": self.source,
            "to_label": self.target,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "moved": self.moved,
            **self.outcome.as_dict(),
        }


def check_suite(suite: Any) -> dict[str, Any]:
    """A suite, checked; BadRequest says what is wrong."""
    if not isinstance(suite, dict):
        raise BadRequest("suite: expected an object", param="suite")
    unknown = set(suite) - SUITE_KEYS
    if unknown:
        raise BadRequest(f"suite.{sorted(unknown)[0]}: unknown key", param="suite")
    if isinstance(suite.get("dataset"), str):
        suite = {**suite, "dataset": {"name": suite["dataset"]}}
    dataset = suite.get("dataset")
    if not isinstance(dataset, dict) or not isinstance(dataset.get("name"), str):
        raise BadRequest("suite.dataset: needs a name", param="suite")
    if not isinstance(suite.get("evaluators"), list) or not suite["evaluators"]:
        raise BadRequest("suite.evaluators: expected a non-empty list", param="suite")
    checked: dict[str, Any] = suite
    return checked


def protect(
    runtime: Runtime, project_id: int, prompt: str, label: str, suite: Any, actor: str
) -> dict[str, Any]:
    """Require ``suite`` to pass before ``label`` of ``prompt`` moves by promotion."""
    suite = check_suite(suite)
    with runtime.db.write() as conn:
        prompt_store.get_prompt(conn, project_id, prompt)
        row = store.set_protection(conn, project_id, prompt, label, suite, actor)
    return dict(row)


def _versions(
    runtime: Runtime, project_id: int, prompt: str, source: str, target: str
) -> tuple[int, int | None]:
    with runtime.db.read() as conn:
        row = prompt_store.get_prompt(conn, project_id, prompt)
        wanted = prompt_store.get_label(conn, row["id"], source)
        current = prompt_store.get_label(conn, row["id"], target)
    if wanted is None:
        raise BadRequest(f"prompt {prompt!r} has no label {source!r}", param="from")
    return int(wanted["version"]), int(current["version"]) if current is not None else None


def promote(
    runtime: Runtime,
    project_id: int,
    prompt: str,
    source: str,
    target: str,
    *,
    suite: dict[str, Any] | None = None,
    actor: Actor,
) -> Promotion:
    """Run the suite of ``target`` (or ``suite``) and move ``target`` to ``source``'s version
    if it passes. Raises gate.GateError when the suite cannot run."""
    with runtime.db.read() as conn:
        protection = store.get_protection(conn, project_id, prompt, target)
    if protection is not None:
        suite = protection["suite"]
    if suite is None:
        raise BadRequest(
            f"label {target!r} of {prompt!r} is not protected: give a suite", param="suite"
        )
    suite = check_suite(suite)
    version, current = _versions(runtime, project_id, prompt, source, target)
    if current == version:
        raise Conflict(f"{target!r} already points at version {version}", param="to")
    base = {"type": "prompt", "prompt": prompt}
    if suite.get("model"):
        base["model"] = suite["model"]
    targets = [{"name": "candidate", **base, "version": version}]
    if current is not None:
        targets.insert(0, {"name": "baseline", **base, "version": current})
    evaluators = suite["evaluators"]
    thresholds = suite.get("thresholds")
    if not thresholds and current is not None:
        names = [gate_name(e) for e in evaluators]
        thresholds = [
            {"evaluator": n, "target": "candidate", "no_regression_vs": "baseline"} for n in names
        ]
    with runtime.db.read() as conn:
        project_name = _project_name(conn, project_id)
    doc = {
        "project": project_name,
        "dataset": suite["dataset"],
        "targets": targets,
        "evaluators": evaluators,
        "config": suite.get("config"),
        "thresholds": [t for t in thresholds or [] if _applies(t, current)],
    }
    outcome = gate.run(runtime, doc)
    moved = outcome.passed
    if moved:
        ids = ", ".join(f"{name} #{i}" for name, i in outcome.experiments.items())
        registry_of(runtime).move_label(
            project_id,
            prompt,
            target,
            version,
            actor=actor,
            reason=f"promoted from {source} after evaluation passed (experiments {ids})",
            guarded=False,
        )
    return Promotion(prompt, source, target, current, version, moved, outcome)


def gate_name(config: Any) -> str:
    if isinstance(config, str):
        return config
    return str(config.get("name") or config.get("type"))


def _applies(threshold: dict[str, Any], current: int | None) -> bool:
    """Without a baseline (the label is new), only absolute thresholds apply."""
    return current is not None or (
        threshold.get("target") != "baseline" and not threshold.get("no_regression_vs")
    )


def _project_name(conn: Any, project_id: int) -> str:
    from pilothouse.store import identity

    return str(identity.get_project(conn, project_id)["name"])


def refuse_manual_moves(conn: Connection, project_id: int, prompt: str, label: str) -> None:
    """A label guard for the prompt registry: protected labels move only by promotion."""
    protection = store.get_protection(conn, project_id, prompt, label)
    if protection is not None:
        raise Forbidden(
            f"label {label!r} of {prompt!r} is protected by an evaluation suite: promote it "
            "with `pilothouse eval promote` or POST /api/promotions",
            code="label_protected",
        )
