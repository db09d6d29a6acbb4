"""Datasets, experiments and their comparison (web/pages/evals.py)."""

from __future__ import annotations

from starlette.testclient import TestClient

from pilothouse.evals import experiments
from pilothouse.evals.api import datasets_of
from pilothouse.runtime import Runtime
from tests.web.targets import CAPITALS

ITEMS = [
    {"input": {"country": c}, "expected": city, "key": c.lower()} for c, city in CAPITALS.items()
]


def seed_experiments(runtime: Runtime) -> tuple[int, int]:
    """A dataset and two finished experiments on it: one right, one wrong on two items."""
    datasets_of(runtime).create(1, "capitals", items=ITEMS, description="Capital <cities>")
    ids = []
    for name, function in (("baseline", "right"), ("candidate", "sloppy")):
        row = experiments.create(
            runtime,
            1,
            dataset="capitals",
            name=name,
            target={"type": "python", "function": f"tests.web.targets:{function}"},
            evaluators=["equals"],
        )
        experiments.run_sync(runtime, row["id"])
        ids.append(int(row["id"]))
    runtime.traces.flush()
    return ids[0], ids[1]


def test_datasets_page_lists_datasets_and_experiments(admin: TestClient, runtime: Runtime) -> None:
    seed_experiments(runtime)
    page = admin.get("/projects/1/datasets")
    assert page.status_code == 200
    assert "capitals" in page.text
    assert "Capital &lt;cities&gt;" in page.text
    assert "baseline" in page.text and "candidate" in page.text
    assert "Compare selected" in page.text


def test_dataset_page_shows_items(admin: TestClient, runtime: Runtime) -> None:
    seed_experiments(runtime)
    page = admin.get("/projects/1/datasets/capitals")
    assert page.status_code == 200
    for city in CAPITALS.values():
        assert city in page.text
    assert admin.get("/projects/1/datasets/capitals?version=9").status_code == 404
    assert admin.get("/projects/1/datasets/nope").status_code == 404


def test_experiment_page_shows_scores_per_item(admin: TestClient, runtime: Runtime) -> None:
    _, candidate = seed_experiments(runtime)
    page = admin.get(f"/projects/1/experiments/{candidate}")
    assert page.status_code == 200
    assert "Kyoto" in page.text and "Cusco" in page.text
    assert page.text.count('class="pill pill-bad"') >= 2
    assert "50.0%" in page.text  # pass rate of equals
    assert admin.get("/projects/1/experiments/9999").status_code == 404


def test_compare_two_experiments(admin: TestClient, runtime: Runtime) -> None:
    baseline, candidate = seed_experiments(runtime)
    page = admin.get(f"/projects/1/experiments/compare?baseline={baseline}&candidate={candidate}")
    assert page.status_code == 200
    text = page.text
    assert "candidate</a> vs baseline" in text
    assert "Items that changed" in text
    assert "japan" in text and "peru" in text and "france" not in text
    assert "-1.000" in text
    assert admin.get("/projects/1/experiments/compare?baseline=x").status_code == 400
