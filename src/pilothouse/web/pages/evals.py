"""Datasets and experiments: items, an experiment's results, two experiments compared.

Reads use the evaluation store's queries (:mod:`pilothouse.store.evals`); the comparison is the
one the API and the CLI use (:func:`pilothouse.evals.experiments.compare`: wins, losses and a
paired bootstrap per evaluator), so every surface reports the same verdict.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from pilothouse.errors import BadRequest, NotFound
from pilothouse.store import evals as store
from pilothouse.web.ui import Page

#: Items and results shown on one page (datasets hold up to tens of thousands).
MAX_ROWS = 500


def datasets(page: Page) -> Response:
    """Datasets of the project, and its recent experiments."""
    page.require("read")
    with page.runtime.db.read() as conn:
        rows = store.list_datasets(conn, page.project_id)
        runs = store.list_experiments(conn, page.project_id, limit=50)
    names = {r["id"]: r["name"] for r in rows}
    return page.render("evals/datasets.html", datasets=rows, experiments=runs, names=names)


def dataset(page: Page) -> Response:
    """One dataset version's items (``?version=``, default latest) and its experiments."""
    page.require("read")
    name = page.request.path_params["name"]
    raw = page.query("version")
    with page.runtime.db.read() as conn:
        row = store.get_dataset(conn, page.project_id, name)
        version = int(raw) if raw.isdigit() else row["latest_version"]
        store.get_version(conn, row["id"], version)
        items = store.live_items(conn, row["id"], version)
        versions = store.list_versions(conn, row["id"])
        runs = store.list_experiments(conn, page.project_id, dataset_id=row["id"], limit=50)
    return page.render(
        "evals/dataset.html",
        dataset=row,
        version=version,
        versions=versions,
        items=items[:MAX_ROWS],
        total=len(items),
        experiments=runs,
    )


def _experiment(page: Page, experiment_id: int) -> Any:
    with page.runtime.db.read() as conn:
        row = store.get_experiment(conn, experiment_id)
    if row["project_id"] != page.project_id:
        raise NotFound(f"experiment {experiment_id} not found in this project")
    return row


def experiment(page: Page) -> Response:
    """An experiment's summary per evaluator and its results item by item."""
    page.require("read")
    row = _experiment(page, int(page.request.path_params["experiment_id"]))
    with page.runtime.db.read() as conn:
        results = store.results_of(conn, row["id"])
        items = store.items_by_id(conn, [r["item_id"] for r in results[:MAX_ROWS]])
        dataset_row = store.dataset_by_id(conn, row["dataset_id"])
        others = store.list_experiments(conn, page.project_id, dataset_id=row["dataset_id"])
    summary = row["summary"] or {}
    names = list(summary.get("names") or [])
    return page.render(
        "evals/experiment.html",
        experiment=row,
        dataset=dataset_row,
        summary=summary,
        names=names,
        results=results[:MAX_ROWS],
        total=len(results),
        items=items,
        others=[o for o in others if o["id"] != row["id"]],
    )


def compare(page: Page) -> Response:
    """Candidates against a baseline: wins, losses, significance, then the items that moved."""
    from pilothouse.evals.experiments import compare as compare_runs

    page.require("read")
    raw_base = page.query("baseline")
    raw_others = [v for v in page.request.query_params.getlist("candidate") if v]
    if not raw_base.isdigit() or not raw_others or not all(v.isdigit() for v in raw_others):
        raise BadRequest("choose a baseline and at least one candidate experiment")
    base = _experiment(page, int(raw_base))
    others = [_experiment(page, int(v)) for v in raw_others]
    result = compare_runs(page.runtime, base["id"], *(o["id"] for o in others))
    return page.render("evals/compare.html", baseline=base, candidates=others, comparison=result)
