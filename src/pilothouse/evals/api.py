"""Evaluation routes of the management API: ``/api/datasets``, ``/api/experiments``,
``/api/evaluators``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field

from pilothouse.api.deps import Caller, ProjectQ, RuntimeDep, Strict, project_of
from pilothouse.errors import BadRequest, NotFound
from pilothouse.evals import datasets as ds
from pilothouse.evals import experiments
from pilothouse.evals.datasets import Change, Datasets
from pilothouse.runtime import Runtime
from pilothouse.store import evals as store
from pilothouse.store import traces as trace_store

router = APIRouter(tags=["evaluation"])

DatasetName = Annotated[str, Path(min_length=1, max_length=200)]
VersionQ = Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Default: latest")]


def datasets_of(runtime: Runtime) -> Datasets:
    found = runtime.state.get("evals.datasets")
    if found is None:
        found = runtime.state["evals.datasets"] = Datasets(runtime.db)
    assert isinstance(found, Datasets)
    return found


# --- models -----------------------------------------------------------------------------------


class DatasetCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=5000)
    items: list[dict[str, Any]] = Field(default_factory=list, max_length=ds.MAX_ITEMS)


class ItemsWrite(Strict):
    items: list[dict[str, Any]] = Field(default_factory=list, max_length=ds.MAX_ITEMS)
    replace: bool = Field(False, description="Make the dataset exactly these items")
    remove: list[str] = Field(default_factory=list, description="Keys of items to remove")
    message: str = Field("", max_length=2000)


class FromTraces(Strict):
    name: str | None = Field(None, description="Trace name")
    model: str | None = None
    user_id: str | None = None
    session_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    status: Literal["ok", "error"] | None = None
    score_name: str | None = None
    score_min: float | None = None
    score_max: float | None = None
    text: str | None = None
    limit: int = Field(100, ge=1, le=10_000)
    expected_from_output: bool = True


class DatasetOut(BaseModel):
    id: int
    project_id: int
    name: str
    description: str
    latest_version: int
    created_at: datetime
    updated_at: datetime


class ChangeOut(BaseModel):
    dataset: DatasetOut
    version: int
    created: bool = Field(description="False when nothing changed")
    added: int
    removed: int
    item_count: int


class ExperimentCreate(Strict):
    dataset: str = Field(min_length=1, max_length=200)
    dataset_version: int | None = Field(None, ge=1, description="Default: latest (pinned)")
    name: str = Field("", max_length=200)
    target: dict[str, Any] = Field(description="prompt, model, python or http target")
    evaluators: list[dict[str, Any] | str] = Field(min_length=1)
    config: dict[str, Any] = Field(
        default_factory=dict, description="concurrency, retries, repeats, backoff"
    )


class ExperimentOut(BaseModel):
    id: int
    project_id: int
    dataset_id: int
    dataset_version: int
    name: str
    target: dict[str, Any]
    evaluators: list[Any]
    config: dict[str, Any]
    status: str
    error: str | None
    summary: dict[str, Any] | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    job_id: str | None = None


def _change(change: Change) -> dict[str, Any]:
    return {
        "dataset": dict(change.dataset),
        "version": change.version,
        "created": change.created,
        "added": change.added,
        "removed": change.removed,
        "item_count": change.item_count,
    }


# --- datasets ---------------------------------------------------------------------------------


@router.get("/api/datasets", response_model=list[DatasetOut])
def list_datasets(runtime: RuntimeDep, caller: Caller, project_id: ProjectQ = None) -> Any:
    """Every dataset of the project."""
    project = project_of(runtime, caller, project_id, "read")
    with runtime.db.read() as conn:
        return [dict(r) for r in store.list_datasets(conn, project)]


@router.post("/api/datasets", response_model=ChangeOut, status_code=201)
def create_dataset(
    body: DatasetCreate, runtime: RuntimeDep, caller: Caller, project_id: ProjectQ = None
) -> Any:
    """Create a dataset (version 1), optionally with its items."""
    project = project_of(runtime, caller, project_id, "write")
    change = datasets_of(runtime).create(
        project, body.name, description=body.description, items=body.items, author=caller.name
    )
    return _change(change)


@router.get("/api/datasets/{name}")
def get_dataset(
    name: DatasetName, runtime: RuntimeDep, caller: Caller, project_id: ProjectQ = None
) -> dict[str, Any]:
    """A dataset with its versions, newest first."""
    project = project_of(runtime, caller, project_id, "read")
    with runtime.db.read() as conn:
        row = store.get_dataset(conn, project, name)
        versions = store.list_versions(conn, row["id"])
    return {**dict(row), "versions": [dict(v) for v in versions]}


@router.delete("/api/datasets/{name}", status_code=204)
def delete_dataset(
    name: DatasetName, runtime: RuntimeDep, caller: Caller, project_id: ProjectQ = None
) -> Response:
    """Delete a dataset with every version and experiment on it."""
    project = project_of(runtime, caller, project_id, "write")
    with runtime.db.write() as conn:
        store.delete_dataset(conn, store.get_dataset(conn, project, name)["id"])
    return Response(status_code=204)


@router.get("/api/datasets/{name}/items")
def dataset_items(
    name: DatasetName,
    runtime: RuntimeDep,
    caller: Caller,
    version: VersionQ = None,
    project_id: ProjectQ = None,
) -> dict[str, Any]:
    """The items of one version (default: latest)."""
    project = project_of(runtime, caller, project_id, "read")
    _, number, rows = datasets_of(runtime).items(project, name, version)
    return {"version": number, "items": [ds.public_item(r) for r in rows]}


@router.post("/api/datasets/{name}/items", response_model=ChangeOut)
def write_items(
    name: DatasetName,
    body: ItemsWrite,
    runtime: RuntimeDep,
    caller: Caller,
    project_id: ProjectQ = None,
) -> Any:
    """Add, replace or remove items: a new version unless nothing changed."""
    project = project_of(runtime, caller, project_id, "write")
    change = datasets_of(runtime).write(
        project,
        name,
        body.items,
        replace=body.replace,
        remove=body.remove,
        author=caller.name,
        message=body.message,
    )
    return _change(change)


@router.post("/api/datasets/{name}/from-traces", response_model=ChangeOut)
def items_from_traces(
    name: DatasetName,
    body: FromTraces,
    runtime: RuntimeDep,
    caller: Caller,
    project_id: ProjectQ = None,
) -> Any:
    """Add the traces matching a filter as items (input, output as expected, trace id kept)."""
    project = project_of(runtime, caller, project_id, "write")
    where = trace_store.TraceFilter(
        **body.model_dump(exclude={"limit", "expected_from_output"}, exclude_none=True)
    )
    change = datasets_of(runtime).from_traces(
        project,
        name,
        where,
        limit=body.limit,
        expected_from_output=body.expected_from_output,
        author=caller.name,
    )
    return _change(change)


@router.get("/api/datasets/{name}/export", response_class=PlainTextResponse)
def export_dataset(
    name: DatasetName,
    runtime: RuntimeDep,
    caller: Caller,
    format: Annotated[Literal["jsonl", "csv"], Query()] = "jsonl",
    version: VersionQ = None,
    project_id: ProjectQ = None,
) -> Response:
    """One version as JSONL or CSV."""
    project = project_of(runtime, caller, project_id, "read")
    _, _, rows = datasets_of(runtime).items(project, name, version)
    if format == "csv":
        return Response(ds.to_csv(rows), media_type="text/csv")
    return Response("".join(ds.to_jsonl(rows)), media_type="application/x-ndjson")


# --- experiments ------------------------------------------------------------------------------


@router.get("/api/evaluators")
def list_evaluators(runtime: RuntimeDep, caller: Caller) -> list[dict[str, Any]]:
    """Every registered evaluator with its options."""
    return experiments.evaluators_of(runtime).reference()


@router.post("/api/experiments", response_model=ExperimentOut, status_code=202)
def create_experiment(
    body: ExperimentCreate, runtime: RuntimeDep, caller: Caller, project_id: ProjectQ = None
) -> Any:
    """Create an experiment and run it as a background job (``evals.run_experiment``)."""
    project = project_of(runtime, caller, project_id, "write")
    row = experiments.create(
        runtime,
        project,
        dataset=body.dataset,
        dataset_version=body.dataset_version,
        name=body.name,
        target=body.target,
        evaluators=body.evaluators,
        config=body.config,
        created_by=caller.name,
        allow_code=False,
    )
    job_id = runtime.jobs.enqueue(
        "evals.run_experiment", project_id=project, experiment_id=row["id"]
    )
    return {**dict(row), "job_id": job_id}


@router.get("/api/experiments", response_model=list[ExperimentOut])
def list_experiments(
    runtime: RuntimeDep,
    caller: Caller,
    dataset: Annotated[str | None, Query(max_length=200)] = None,
    project_id: ProjectQ = None,
) -> Any:
    """Experiments of the project, newest first (optionally of one dataset)."""
    project = project_of(runtime, caller, project_id, "read")
    with runtime.db.read() as conn:
        dataset_id = store.get_dataset(conn, project, dataset)["id"] if dataset else None
        return [dict(r) for r in store.list_experiments(conn, project, dataset_id)]


@router.get("/api/experiments/compare")
def compare_experiments(
    runtime: RuntimeDep,
    caller: Caller,
    baseline: Annotated[int, Query(ge=1, le=2**62)],
    candidate: Annotated[list[int], Query(min_length=1, max_length=10)],
) -> dict[str, Any]:
    """Candidates against a baseline item by item: wins, losses, ties, paired bootstrap."""
    _experiment(runtime, caller, baseline)
    for other in candidate:
        _experiment(runtime, caller, other)
    return experiments.compare(runtime, baseline, *candidate)


def _experiment(runtime: Runtime, caller: Any, experiment_id: int) -> dict[str, Any]:
    with runtime.db.read() as conn:
        row = dict(store.get_experiment(conn, experiment_id))
    project_of(runtime, caller, row["project_id"], "read")
    return row


ExperimentId = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/api/experiments/{experiment_id}", response_model=ExperimentOut)
def get_experiment(experiment_id: ExperimentId, runtime: RuntimeDep, caller: Caller) -> Any:
    """One experiment with its summary (means, pass rates, 95 % intervals)."""
    return _experiment(runtime, caller, experiment_id)


@router.get("/api/experiments/{experiment_id}/results")
def experiment_results(
    experiment_id: ExperimentId,
    runtime: RuntimeDep,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Annotated[int | None, Query(ge=0, le=2**62, description="next_cursor")] = None,
) -> dict[str, Any]:
    """Per-item outputs, scores and trace ids, a page at a time (in the order stored)."""
    _experiment(runtime, caller, experiment_id)
    with runtime.db.read() as conn:
        rows = store.results_of(conn, experiment_id, after_id=cursor, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        items = store.items_by_id(conn, sorted({r["item_id"] for r in rows}))
    return {
        "results": [
            {
                **{k: v for k, v in dict(r).items() if k != "created_at"},
                "key": items[r["item_id"]]["key"],
            }
            for r in rows
        ],
        "next_cursor": rows[-1]["id"] if more else None,
    }


@router.post("/api/experiments/{experiment_id}/resume", status_code=202)
def resume_experiment(
    experiment_id: ExperimentId, runtime: RuntimeDep, caller: Caller
) -> dict[str, Any]:
    """Run what an interrupted experiment has not stored yet (job ``evals.run_experiment``)."""
    row = _experiment(runtime, caller, experiment_id)
    project_of(runtime, caller, row["project_id"], "write")
    job_id = runtime.jobs.enqueue(
        "evals.run_experiment", project_id=row["project_id"], experiment_id=experiment_id
    )
    return {"experiment_id": experiment_id, "job_id": job_id}


# --- promotion --------------------------------------------------------------------------------


class ProtectedLabel(Strict):
    prompt: str = Field(min_length=1, max_length=200)
    label: str = Field(min_length=1, max_length=64)
    suite: dict[str, Any] = Field(
        description="eval.yaml without targets: dataset (by name), evaluators, thresholds, "
        "optional model and config"
    )


class PromotionCreate(Strict):
    prompt: str = Field(min_length=1, max_length=200)
    from_label: str = Field(min_length=1, max_length=64, description="e.g. staging")
    to_label: str = Field(min_length=1, max_length=64, description="a protected label")


@router.get("/api/protected-labels")
def list_protected_labels(
    runtime: RuntimeDep, caller: Caller, project_id: ProjectQ = None
) -> list[dict[str, Any]]:
    """Prompt labels that move only when their evaluation suite passes."""
    project = project_of(runtime, caller, project_id, "read")
    with runtime.db.read() as conn:
        return [dict(r) for r in store.list_protections(conn, project)]


@router.put("/api/protected-labels")
def protect_label(
    body: ProtectedLabel, runtime: RuntimeDep, caller: Caller, project_id: ProjectQ = None
) -> dict[str, Any]:
    """Protect a prompt label with an evaluation suite (replaces an earlier one)."""
    from pilothouse.evals.promotion import protect

    project = project_of(runtime, caller, project_id, "admin")
    return protect(runtime, project, body.prompt, body.label, body.suite, caller.name)


@router.delete("/api/protected-labels", status_code=204)
def unprotect_label(
    runtime: RuntimeDep,
    caller: Caller,
    prompt: Annotated[str, Query(min_length=1, max_length=200)],
    label: Annotated[str, Query(min_length=1, max_length=64)],
    project_id: ProjectQ = None,
) -> Response:
    """Remove a label's protection."""
    project = project_of(runtime, caller, project_id, "admin")
    with runtime.db.write() as conn:
        if not store.remove_protection(conn, project, prompt, label):
            raise NotFound(f"{prompt}@{label} is not protected")
    return Response(status_code=204)


@router.post("/api/promotions", status_code=202)
def create_promotion(
    body: PromotionCreate, runtime: RuntimeDep, caller: Caller, project_id: ProjectQ = None
) -> dict[str, Any]:
    """Promote a protected label as the background job ``evals.promote``: the suite runs and
    the label moves only if it passes (see the job's result and the prompt's history)."""
    project = project_of(runtime, caller, project_id, "write")
    with runtime.db.read() as conn:
        if store.get_protection(conn, project, body.prompt, body.to_label) is None:
            raise BadRequest(
                f"{body.prompt}@{body.to_label} is not protected: protect it with a suite first",
                param="to_label",
            )
    job_id = runtime.jobs.enqueue(
        "evals.promote",
        project_id=project,
        project=project,
        prompt=body.prompt,
        source=body.from_label,
        target=body.to_label,
        actor=f"key:{caller.name}" if caller.kind == "key" else caller.name,
    )
    return {"job_id": job_id}


# --- online evaluation ------------------------------------------------------------------------


class OnlineRuleCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    filter: dict[str, Any] = Field(
        default_factory=dict, description="Trace filters: model, tags, name, user_id, ..."
    )
    sample_rate: float = Field(0.1, gt=0, le=1, description="Share of matching traces scored")
    evaluators: list[dict[str, Any] | str] = Field(min_length=1)
    max_per_run: int = Field(100, ge=1, le=10_000, description="Traces per minute at most")
    cost_cap_usd: float | None = Field(None, ge=0, description="Stop once evaluators cost this")


class OnlineRulePatch(Strict):
    enabled: bool | None = None
    sample_rate: float | None = Field(None, gt=0, le=1)
    max_per_run: int | None = Field(None, ge=1, le=10_000)
    cost_cap_usd: float | None = Field(None, ge=0)


RuleId = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/api/online-evals")
def list_online_rules(
    runtime: RuntimeDep, caller: Caller, project_id: ProjectQ = None
) -> list[dict[str, Any]]:
    """Online evaluation rules of the project, with traces scored and money spent."""
    project = project_of(runtime, caller, project_id, "read")
    with runtime.db.read() as conn:
        return [dict(r) for r in store.list_rules(conn, project)]


@router.post("/api/online-evals", status_code=201)
def create_online_rule(
    body: OnlineRuleCreate, runtime: RuntimeDep, caller: Caller, project_id: ProjectQ = None
) -> dict[str, Any]:
    """Score a sample of new traces matching a filter (job ``evals.online``, every minute)."""
    from pilothouse.evals.online import check_rule

    project = project_of(runtime, caller, project_id, "write")
    values = check_rule(runtime, body.model_dump())
    with runtime.db.write() as conn:
        return dict(store.create_rule(conn, project_id=project, name=body.name, **values))


def _rule(runtime: Runtime, caller: Any, rule_id: int, scope: str) -> dict[str, Any]:
    with runtime.db.read() as conn:
        row = dict(store.get_rule(conn, rule_id))
    project_of(runtime, caller, row["project_id"], scope)
    return row


@router.patch("/api/online-evals/{rule_id}")
def update_online_rule(
    rule_id: RuleId, body: OnlineRulePatch, runtime: RuntimeDep, caller: Caller
) -> dict[str, Any]:
    """Enable or disable a rule, or change its rate, limit or cost cap."""
    _rule(runtime, caller, rule_id, "write")
    changes = body.model_dump(exclude_unset=True)
    # null clears the cost cap; for the other fields it means "unchanged"
    changes = {k: v for k, v in changes.items() if v is not None or k == "cost_cap_usd"}
    with runtime.db.write() as conn:
        if changes:
            store.update_rule(conn, rule_id, **changes)
        return dict(store.get_rule(conn, rule_id))


@router.delete("/api/online-evals/{rule_id}", status_code=204)
def delete_online_rule(rule_id: RuleId, runtime: RuntimeDep, caller: Caller) -> Response:
    """Delete a rule (the scores it wrote stay on their traces)."""
    _rule(runtime, caller, rule_id, "write")
    with runtime.db.write() as conn:
        store.delete_rule(conn, rule_id)
    return Response(status_code=204)
