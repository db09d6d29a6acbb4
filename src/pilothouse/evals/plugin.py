"""Evaluation as a built-in plugin: API routes, CLI groups, the experiment job, and the gateway
hook that hands evaluation calls back to their caller."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pilothouse.evals.models import CALL_HEADER, CALLS
from pilothouse.hookspecs import hookimpl
from pilothouse.jobs import JobContext, JobSpec

if TYPE_CHECKING:
    import click

    from pilothouse.gateway.call import Call
    from pilothouse.runtime import Runtime


@hookimpl
def asgi_routes(runtime: Runtime) -> list[Any]:
    from pilothouse.evals.annotations import router as annotations
    from pilothouse.evals.api import router

    return [*router.routes, *annotations.routes]


@hookimpl
def startup(runtime: Runtime) -> None:
    """Protected prompt labels move only through an evaluation-gated promotion."""
    from pilothouse.evals.promotion import refuse_manual_moves
    from pilothouse.prompts.api import registry_of

    guards = registry_of(runtime).label_guards
    if refuse_manual_moves not in guards:
        guards.append(refuse_manual_moves)


@hookimpl
def register_commands(cli: click.Group) -> None:
    from pilothouse.evals.cli import datasets, eval_group

    cli.add_command(datasets)
    cli.add_command(eval_group)


def run_experiment(context: JobContext, experiment_id: int) -> dict[str, Any]:
    """The ``evals.run_experiment`` job: run or resume one experiment in a runtime of its own
    (its gateway's connections belong to the job's event loop)."""
    from pilothouse.evals.experiments import run_sync
    from pilothouse.runtime import Runtime

    runtime = Runtime(context.settings)
    try:
        summary = run_sync(runtime, experiment_id)
    finally:
        runtime.traces.close()
        runtime.db.close()
    return {"experiment_id": experiment_id, "results": summary.get("results")}


def promote(
    context: JobContext, project: int, prompt: str, source: str, target: str, actor: str
) -> dict[str, Any]:
    """The ``evals.promote`` job: run the protected label's suite, move it if it passes."""
    from pilothouse.evals.promotion import promote as run_promotion
    from pilothouse.prompts.registry import Actor
    from pilothouse.runtime import Runtime

    runtime = Runtime(context.settings)
    try:
        result = run_promotion(
            runtime, project, prompt, source, target, actor=Actor(f"{actor} (promotion)")
        )
    finally:
        runtime.traces.close()
        runtime.db.close()
    return {k: v for k, v in result.as_dict().items() if k not in ("summaries", "comparisons")}


def online(context: JobContext) -> dict[str, int]:
    """The ``evals.online`` job: score new sampled traces for every enabled rule."""
    from pilothouse.evals.online import run_all_sync
    from pilothouse.runtime import Runtime
    from pilothouse.store import evals as store

    with context.db.read() as conn:
        if not any(r["enabled"] for r in store.list_rules(conn)):
            return {}
    runtime = Runtime(context.settings)
    try:
        return run_all_sync(runtime)
    finally:
        runtime.traces.close()
        runtime.db.close()


@hookimpl
def register_jobs(register: Callable[[JobSpec], None]) -> None:
    register(
        JobSpec(
            name="evals.run_experiment",
            func=run_experiment,
            retries=2,
            retry_delay=2.0,
            description="Runs (or resumes) an experiment; results already stored are kept.",
        )
    )
    register(
        JobSpec(
            name="evals.promote",
            func=promote,
            retries=0,
            description="Runs a protected prompt label's suite; moves the label if it passes.",
        )
    )
    register(
        JobSpec(
            name="evals.online",
            func=online,
            retries=0,
            schedule="* * * * *",
            description="Scores a sample of new traces for each online evaluation rule.",
        )
    )


@hookimpl
def gateway_request(call: Call) -> None:
    """Remember evaluation calls, so the experiment reads their cost once they settle."""
    token = call.headers.get(CALL_HEADER)
    if token and call.api_key.name == "evals":
        CALLS[token] = call
