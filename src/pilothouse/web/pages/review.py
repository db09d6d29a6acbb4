"""Annotation queues: a reviewer works through queued traces and dataset items by the rubric.

A queue is created here with its rubric written one criterion per line (:func:`rubric`);
traces are added from their page and datasets from the queue's page. Built on the evaluation
package's human review (:mod:`pilothouse.evals.annotations`, the same
store and rules as ``/api/annotation-queues``): **Start reviewing** claims the next item open to
you (POST), the item page shows it with the rubric, and saving the scores claims the next one,
so a reviewer goes from item to item without leaving the keyboard (``static/review.js``: digits
pick a value, ``y``/``n`` answer yes/no, ``j``/``k`` move between criteria, Enter saves). Trace
items also get the scores on their trace (source ``annotation``). Reviewing needs ``write``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import ValidationError
from starlette.responses import Response

from pilothouse.api.problems import validation_errors
from pilothouse.errors import BadRequest, NotFound
from pilothouse.evals.annotations import (
    ItemsAdd,
    QueueCreate,
    add_to_queue,
    new_queue,
    record_annotation,
)
from pilothouse.evals.datasets import public_item
from pilothouse.store import annotations as store
from pilothouse.store import evals as eval_store
from pilothouse.store import traces as trace_store
from pilothouse.web.formats import plural
from pilothouse.web.ui import Page

#: Numeric criteria with at most this many whole values get one button per value.
MAX_CHOICES = 10
MAX_COMMENT = 10_000
M = TypeVar("M", QueueCreate, ItemsAdd)
RANGE = re.compile(r"(?P<low>-?\d+(?:\.\d+)?)\s*(?:-|to|\.\.)\s*(?P<high>-?\d+(?:\.\d+)?)")


def _queue(page: Page, queue_id: int | None = None) -> dict[str, Any]:
    """The queue of the URL (or ``queue_id``), if it belongs to the current project."""
    if queue_id is None:
        queue_id = int(page.request.path_params["queue_id"])
    with page.runtime.db.read() as conn:
        queue = dict(store.get_queue(conn, queue_id))
    if queue["project_id"] != page.project_id:
        raise NotFound(f"annotation queue {queue['id']} not found")
    return queue


def progress(counts: dict[str, int]) -> dict[str, int]:
    """Items done and in all (``x of y``)."""
    return {"done": counts.get("done", 0), "total": sum(counts.values())}


def choices(config: dict[str, Any]) -> list[tuple[str, str]] | None:
    """(value, label) buttons for a criterion, or None when it needs a free number."""
    if config["type"] == "boolean":
        return [("true", "Yes"), ("false", "No")]
    if config["type"] == "categorical":
        return [(c, c) for c in config.get("categories") or []] or None
    low, high = config.get("min"), config.get("max")
    if (
        low is not None
        and high is not None
        and float(low).is_integer()
        and float(high).is_integer()
        and 0 <= high - low < MAX_CHOICES
    ):
        return [(str(v), str(v)) for v in range(int(low), int(high) + 1)]
    return None


def _scores(configs: list[dict[str, Any]], form: Mapping[str, str]) -> dict[str, Any]:
    """The form's ``score.<name>`` fields as rubric values; empty fields are left out."""
    out: dict[str, Any] = {}
    for config in configs:
        name = config["name"]
        raw = form.get(f"score.{name}", "").strip()
        if not raw:
            continue
        if config["type"] == "boolean":
            if raw not in ("true", "false"):
                raise BadRequest(f"{name}: yes or no", param=name)
            out[name] = raw == "true"
        elif config["type"] == "numeric":
            try:
                number = float(raw)
            except ValueError as exc:
                raise BadRequest(f"{name}: expected a number", param=name) from exc
            out[name] = int(number) if number.is_integer() else number
        else:
            out[name] = raw
    if not out:
        raise BadRequest("score at least one criterion of the rubric", param="scores")
    return out


def criterion(line: str) -> dict[str, Any]:
    """One rubric line, ``name: kind`` or ``name: kind: description``, as a score config.

    kind is ``yes/no`` (boolean), a range ``low-high`` or ``number`` (numeric), or
    categories separated by commas (categorical)."""
    name, _, rest = line.partition(":")
    kind, _, description = rest.partition(":")
    kind = kind.strip()
    config: dict[str, Any] = {"name": name.strip(), "description": description.strip()}
    if not kind:
        raise ValueError("give a kind after the name: yes/no, 1-5, number or categories")
    bounds = RANGE.fullmatch(kind)
    if kind.lower() in ("yes/no", "boolean"):
        config["type"] = "boolean"
    elif kind.lower() == "number":
        config["type"] = "numeric"
    elif bounds:
        low, high = float(bounds["low"]), float(bounds["high"])
        if low >= high:
            raise ValueError(f"the range {kind} must go from low to high")
        config.update(type="numeric", min=low, max=high)
    else:
        config.update(type="categorical", categories=[c.strip() for c in kind.split(",")])
        if "" in config["categories"] or len(config["categories"]) < 2:
            raise ValueError("categories are two or more names separated by commas")
    return config


def rubric(text: str) -> list[dict[str, Any]]:
    """Score configs from the rubric field, one criterion per non-blank line."""
    configs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            configs.append(criterion(line))
        except ValueError as exc:
            raise BadRequest(f"rubric line {number}: {exc}", param="rubric") from exc
    return configs


def _valid(model: type[M], values: dict[str, Any]) -> M:
    """The form's values checked by the API's own model (its first complaint as a 400)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        error = validation_errors(exc.errors())[0]
        raise BadRequest(f"{error['path']}: {error['reason']}", param=error["path"]) from exc


def queues(page: Page) -> Response:
    """GET: the project's review queues with their progress. POST: create one."""
    if page.is_post:
        page.require("write")
        reviewers = page.form.get("reviewers_per_item", "1").strip()
        body = _valid(
            QueueCreate,
            {
                "name": page.form.get("name", "").strip(),
                "description": page.form.get("description", "").strip(),
                "score_configs": rubric(page.form.get("rubric", "")),
                "reviewers_per_item": reviewers if reviewers.isdigit() else 0,
            },
        )
        with page.runtime.db.write() as conn:
            row = new_queue(conn, page.project_id, body)
        return page.redirect(page.url(f"/annotations/{row['id']}"), f"Queue “{body.name}” created.")
    page.require("read")
    with page.runtime.db.read() as conn:
        rows = [
            {**dict(q), "progress": progress(store.counts(conn, q["id"]))}
            for q in store.list_queues(conn, page.project_id)
        ]
    return page.render("annotations/list.html", queues=rows)


def queue(page: Page) -> Response:
    """One queue: its rubric, progress, the button that starts a review session, and the
    datasets that can be added to it."""
    page.require("read")
    found = _queue(page)
    with page.runtime.db.read() as conn:
        counts = store.counts(conn, found["id"])
        datasets = [d["name"] for d in eval_store.list_datasets(conn, page.project_id)]
    return page.render(
        "annotations/queue.html",
        queue=found,
        progress=progress(counts),
        counts=counts,
        datasets=datasets,
    )


def add_items(page: Page) -> Response:
    """POST: add a trace (from its page) or a dataset's latest version (from the queue's page)."""
    page.require("write")
    queue_id = page.form.get("queue_id", "")
    if not queue_id.isdigit() or not 0 < int(queue_id) < 2**62:
        raise BadRequest("choose a review queue", param="queue_id")
    found = _queue(page, int(queue_id))
    trace_id = page.form.get("trace_id", "").strip()
    body = _valid(
        ItemsAdd,
        {"trace_ids": [trace_id] if trace_id else [], "dataset": page.form.get("dataset") or None},
    )
    if not body.trace_ids and not body.dataset:
        raise BadRequest("choose a dataset or a trace to add", param="dataset")
    with page.runtime.db.write() as conn:
        if trace_id and trace_store.get_trace(conn, page.project_id, trace_id.lower()) is None:
            raise NotFound(f"trace {trace_id} not found")
        added = add_to_queue(conn, found, body)
    done = f"Added {plural(added, 'item')} to “{found['name']}”."
    if trace_id:
        if not added:
            done = f"This trace is already in “{found['name']}”."
        return page.redirect(page.url(f"/traces/{trace_id.lower()}"), done)
    return page.redirect(page.url(f"/annotations/{found['id']}"), done)


def next_item(page: Page) -> Response:
    """POST: claim the next item open to you and go to it (back to the queue when none is)."""
    principal = page.require("write")
    found = _queue(page)
    with page.runtime.db.write() as conn:
        item = store.claim_next(conn, found, principal.name)
    base = page.url(f"/annotations/{found['id']}")
    if item is None:
        return page.redirect(base, "Nothing left for you to review in this queue.")
    return page.redirect(f"{base}/items/{item['id']}")


def item(page: Page) -> Response:
    """GET: an item with the rubric. POST: save your scores and go to the next item."""
    principal = page.require("read")
    found = _queue(page)
    item_id = int(page.request.path_params["item_id"])
    base = page.url(f"/annotations/{found['id']}")
    if page.is_post:
        principal = page.require("write")
        scores = _scores(found["score_configs"], page.form)
        comment = page.form.get("comment", "").strip()[:MAX_COMMENT] or None
        with page.runtime.db.write() as conn:
            record_annotation(conn, found, item_id, principal.name, scores, comment)
            following = store.claim_next(conn, found, principal.name)
        if following is None:
            return page.redirect(base, "Scores saved. You have reviewed every item open to you.")
        return page.redirect(f"{base}/items/{following['id']}", "Scores saved.")
    with page.runtime.db.read() as conn:
        row = store.get_item(conn, found["id"], item_id)
        counts = store.counts(conn, found["id"])
        trace = (
            trace_store.get_trace(conn, page.project_id, row["trace_id"])
            if row["trace_id"]
            else None
        )
        dataset_item = None
        if row["dataset_item_id"]:
            rows = eval_store.items_by_id(conn, [row["dataset_item_id"]])
            dataset_item = public_item(rows[row["dataset_item_id"]])
        mine = store.annotation_by(conn, item_id, principal.name)
    return page.render(
        "annotations/item.html",
        queue=found,
        item=row,
        trace=trace,
        dataset_item=dataset_item,
        mine=mine,
        progress=progress(counts),
        choices=choices,
    )
