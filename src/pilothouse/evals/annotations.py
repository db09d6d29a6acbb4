"""Human review: annotation queues with a rubric, claims, annotations and reviewer agreement.

Routes under ``/api/annotation-queues``. Annotations of trace items are also written onto the
trace as scores (source ``annotation``). Agreement per score: for items with at least two
annotations, the first two reviewers' values are compared: percent agreement and Cohen's
kappa (values as categories).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection, RowMapping

from pilothouse.api.deps import Caller, ProjectQ, RuntimeDep, Strict, project_of
from pilothouse.errors import BadRequest
from pilothouse.evals.datasets import public_item
from pilothouse.runtime import Runtime
from pilothouse.store import annotations as store
from pilothouse.store import evals as eval_store
from pilothouse.store import traces as trace_store
from pilothouse.store.types import utcnow

router = APIRouter(tags=["evaluation"])

QueueId = Annotated[int, Path(ge=1, le=2**62)]
ItemId = Annotated[int, Path(ge=1, le=2**62)]


class ScoreConfig(Strict):
    name: str = Field(min_length=1, max_length=200)
    type: Literal["numeric", "boolean", "categorical"]
    min: float | None = None
    max: float | None = None
    categories: list[str] = Field(default_factory=list, max_length=100)
    description: str = Field("", max_length=2000)


class QueueCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=5000)
    score_configs: list[ScoreConfig] = Field(min_length=1, max_length=50)
    reviewers_per_item: int = Field(1, ge=1, le=10, description="2+ to measure agreement")


class ItemsAdd(Strict):
    trace_ids: list[Annotated[str, Field(pattern=r"^[0-9a-fA-F]{32}$")]] = Field(
        default_factory=list, max_length=10_000
    )
    dataset: str | None = Field(None, max_length=200, description="Add every item of it")
    dataset_version: int | None = Field(None, ge=1)


class AnnotationCreate(Strict):
    scores: dict[str, float | bool | str]
    comment: str | None = Field(None, max_length=10_000)


def cohen_kappa(pairs: Sequence[tuple[Any, Any]]) -> float | None:
    """Cohen's kappa of two raters' labels; None without pairs, 1.0 when chance is certain."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(1 for a, b in pairs if a == b) / n
    first = Counter(a for a, _ in pairs)
    second = Counter(b for _, b in pairs)
    expected = sum(first[k] * second.get(k, 0) for k in first) / (n * n)
    if math.isclose(expected, 1.0):
        return 1.0 if math.isclose(observed, 1.0) else 0.0
    return (observed - expected) / (1 - expected)


def agreement(configs: list[dict[str, Any]], rows: Sequence[Any]) -> dict[str, Any]:
    by_item: dict[int, list[Any]] = {}
    for row in rows:
        by_item.setdefault(row["item_id"], []).append(row)
    out: dict[str, Any] = {}
    for config in configs:
        name = config["name"]
        pairs = []
        for given in by_item.values():
            values = [a["scores"].get(name) for a in given if name in a["scores"]]
            if len(values) >= 2:
                pairs.append((values[0], values[1]))
        kappa = cohen_kappa(pairs)
        out[name] = {
            "pairs": len(pairs),
            "percent_agreement": round(sum(a == b for a, b in pairs) / len(pairs), 6)
            if pairs
            else None,
            "cohen_kappa": None if kappa is None else round(kappa, 6),
        }
    return out


def _check_scores(configs: list[dict[str, Any]], scores: dict[str, Any]) -> None:
    known = {c["name"]: c for c in configs}
    unknown = set(scores) - set(known)
    if unknown:
        raise BadRequest(f"scores.{sorted(unknown)[0]}: not in the queue's rubric", param="scores")
    for name, value in scores.items():
        c = known[name]
        if c["type"] == "boolean" and not isinstance(value, bool):
            raise BadRequest(f"scores.{name}: expected true or false", param="scores")
        if c["type"] == "categorical" and (
            not isinstance(value, str) or (c["categories"] and value not in c["categories"])
        ):
            raise BadRequest(f"scores.{name}: one of {c['categories']}", param="scores")
        if c["type"] == "numeric":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise BadRequest(f"scores.{name}: expected a number", param="scores")
            low, high = c.get("min"), c.get("max")
            if (low is not None and value < low) or (high is not None and value > high):
                raise BadRequest(f"scores.{name}: between {low} and {high}", param="scores")


def new_queue(conn: Connection, project_id: int, body: QueueCreate) -> RowMapping:
    """Store a review queue whose rubric has unique criterion names (API and web console)."""
    names = [c.name for c in body.score_configs]
    if len(set(names)) != len(names):
        raise BadRequest("score_configs: names must be unique", param="score_configs")
    return store.create_queue(
        conn,
        project_id=project_id,
        name=body.name,
        description=body.description,
        score_configs=[c.model_dump() for c in body.score_configs],
        reviewers_per_item=body.reviewers_per_item,
    )


def add_to_queue(conn: Connection, queue: Mapping[str, Any], body: ItemsAdd) -> int:
    """Queue the traces and every live item of the dataset version; how many were new."""
    rows: list[dict[str, Any]] = [
        {"trace_id": t.lower(), "dataset_item_id": None} for t in body.trace_ids
    ]
    if body.dataset:
        dataset = eval_store.get_dataset(conn, queue["project_id"], body.dataset)
        version = body.dataset_version or dataset["latest_version"]
        items = eval_store.live_items(conn, dataset["id"], version)
        rows += [{"trace_id": None, "dataset_item_id": item["id"]} for item in items]
    return store.add_items(conn, queue["id"], rows)


def _queue(runtime: Runtime, caller: Any, queue_id: int, scope: str) -> dict[str, Any]:
    with runtime.db.read() as conn:
        queue = dict(store.get_queue(conn, queue_id))
    project_of(runtime, caller, queue["project_id"], scope)
    return queue


@router.post("/api/annotation-queues", status_code=201)
def create_queue(
    body: QueueCreate, runtime: RuntimeDep, caller: Caller, project_id: ProjectQ = None
) -> dict[str, Any]:
    """A review queue with a rubric (score configs)."""
    project = project_of(runtime, caller, project_id, "write")
    with runtime.db.write() as conn:
        return dict(new_queue(conn, project, body))


@router.get("/api/annotation-queues")
def list_queues(
    runtime: RuntimeDep, caller: Caller, project_id: ProjectQ = None
) -> list[dict[str, Any]]:
    """Review queues of the project, with item counts by status."""
    project = project_of(runtime, caller, project_id, "read")
    with runtime.db.read() as conn:
        return [
            {**dict(q), "items": store.counts(conn, q["id"])}
            for q in store.list_queues(conn, project)
        ]


@router.post("/api/annotation-queues/{queue_id}/items")
def add_items(
    queue_id: QueueId, body: ItemsAdd, runtime: RuntimeDep, caller: Caller
) -> dict[str, int]:
    """Add traces (by id) and/or every item of a dataset version."""
    queue = _queue(runtime, caller, queue_id, "write")
    with runtime.db.write() as conn:
        return {"added": add_to_queue(conn, queue, body)}


@router.post("/api/annotation-queues/{queue_id}/claim", response_model=None)
def claim(queue_id: QueueId, runtime: RuntimeDep, caller: Caller) -> dict[str, Any] | Response:
    """Claim the next item to review (204 when none is left for you)."""
    _queue(runtime, caller, queue_id, "write")
    with runtime.db.write() as conn:
        queue = store.get_queue(conn, queue_id)
        item = store.claim_next(conn, queue, caller.name)
        if item is None:
            return Response(status_code=204)
        out: dict[str, Any] = dict(item)
        if item["trace_id"]:
            trace = trace_store.get_trace(conn, queue["project_id"], item["trace_id"])
            out["trace"] = (
                {k: trace[k] for k in ("name", "model", "input", "output")} if trace else None
            )
        if item["dataset_item_id"]:
            found = eval_store.items_by_id(conn, [item["dataset_item_id"]])
            out["dataset_item"] = public_item(found[item["dataset_item_id"]])
    return out


@router.post("/api/annotation-queues/{queue_id}/items/{item_id}/annotations", status_code=201)
def annotate(
    queue_id: QueueId,
    item_id: ItemId,
    body: AnnotationCreate,
    runtime: RuntimeDep,
    caller: Caller,
) -> dict[str, Any]:
    """Score an item by the queue's rubric; trace items get the scores on their trace."""
    queue = _queue(runtime, caller, queue_id, "write")
    with runtime.db.write() as conn:
        row = record_annotation(conn, queue, item_id, caller.name, body.scores, body.comment)
    return dict(row)


def record_annotation(
    conn: Connection,
    queue: dict[str, Any],
    item_id: int,
    reviewer: str,
    scores: dict[str, Any],
    comment: str | None,
) -> RowMapping:
    """Check ``scores`` against the rubric and store the annotation (for the API and the
    console); a trace item gets the scores on its trace too."""
    _check_scores(queue["score_configs"], scores)
    item = store.get_item(conn, queue["id"], item_id)
    row = store.annotate(conn, queue, item, reviewer, scores, comment)
    if item["trace_id"]:
        now = utcnow()
        conn.execute(
            trace_store.scores.insert(),
            [_trace_score(queue, item, reviewer, k, v, comment, now) for k, v in scores.items()],
        )
    return row


def _trace_score(
    queue: dict[str, Any], item: Any, reviewer: str, name: str, value: Any, comment: Any, now: Any
) -> dict[str, Any]:
    if isinstance(value, bool):
        kind, number, text = "boolean", 1.0 if value else 0.0, None
    elif isinstance(value, int | float):
        kind, number, text = "numeric", float(value), None
    else:
        kind, number, text = "categorical", None, str(value)
    return {
        "project_id": queue["project_id"],
        "trace_id": item["trace_id"],
        "span_id": None,
        "name": name,
        "data_type": kind,
        "value": number,
        "string_value": text,
        "source": "annotation",
        "comment": comment,
        "author": reviewer,
        "metadata": {"queue_id": queue["id"], "item_id": item["id"]},
        "created_at": now,
    }


class Agreement(BaseModel):
    queue_id: int
    items: dict[str, int]
    scores: dict[str, Any]


@router.get("/api/annotation-queues/{queue_id}/agreement", response_model=Agreement)
def queue_agreement(queue_id: QueueId, runtime: RuntimeDep, caller: Caller) -> Any:
    """Agreement between reviewers per score: percent agreement and Cohen's kappa."""
    queue = _queue(runtime, caller, queue_id, "read")
    with runtime.db.read() as conn:
        rows = store.annotations_of(conn, queue_id)
        counts = store.counts(conn, queue_id)
    return {
        "queue_id": queue_id,
        "items": counts,
        "scores": agreement(queue["score_configs"], rows),
    }
