"""Datasets: versions on every change, JSONL/CSV push and export, items from traces, the API."""

from __future__ import annotations

import csv
import io
import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pilothouse.cli import cli
from pilothouse.evals import datasets as ds
from pilothouse.evals.api import datasets_of
from pilothouse.runtime import Runtime
from pilothouse.store import traces as trace_store
from pilothouse.tracing.model import Span

ITEMS: list[dict[str, Any]] = [
    {"input": {"country": "France"}, "expected": "Paris", "key": "fr"},
    {"input": {"country": "Japan"}, "expected": "Tokyo", "metadata": {"region": "asia"}},
    {"country": "Italy", "expected": "Rome", "context": ["Rome is the capital of Italy."]},
]


def test_every_change_makes_a_version_and_old_versions_stay(runtime: Runtime):
    datasets = datasets_of(runtime)
    first = datasets.create(1, "capitals", items=ITEMS, author="test")
    assert (first.version, first.item_count, first.added) == (1, 3, 3)
    same = datasets.write(1, "capitals", ITEMS, replace=True)
    assert not same.created and same.version == 1
    changed = [{**ITEMS[0], "expected": "Paris, France"}, ITEMS[1]]
    second = datasets.write(1, "capitals", changed, replace=True, message="fix")
    assert (second.version, second.item_count) == (2, 2)
    _, _, v2 = datasets.items(1, "capitals", 1)
    _, _, v3 = datasets.items(1, "capitals", 2)
    assert [r["expected"] for r in v2] == ["Paris", "Tokyo", "Rome"]
    assert sorted(r["expected"] for r in v3) == ["Paris, France", "Tokyo"]
    # The unchanged item is the same row in both versions (experiments pair by it).
    tokyo = {r["key"]: r["id"] for r in v2}
    assert {r["key"]: r["id"] for r in v3}[v2[1]["key"]] == tokyo[v2[1]["key"]]
    # Flat rows: fields other than the item fields are input variables.
    assert v2[2]["input"] == {"country": "Italy"}
    assert v2[2]["context"] == ["Rome is the capital of Italy."]
    removed = datasets.write(1, "capitals", [], remove=["fr"])
    assert removed.version == 3 and removed.item_count == 1


def test_jsonl_and_csv_round_trip(runtime: Runtime):
    datasets = datasets_of(runtime)
    datasets.create(1, "rt", items=ITEMS)
    _, _, rows = datasets.items(1, "rt")
    text = "".join(ds.to_jsonl(rows))
    assert [ds.normalize_item(x) for x in ds.read_jsonl(text)] == [
        ds.normalize_item(ds.public_item(r)) for r in rows
    ]
    table = ds.to_csv(rows)
    header = next(csv.reader(io.StringIO(table)))
    assert header == ["key", "country", "expected", "context", "metadata"]
    again = ds.read_csv(table)
    assert [r["country"] for r in again] == ["France", "Japan", "Italy"]
    assert again[1]["metadata"] == {"region": "asia"}
    unchanged = datasets.write(1, "rt", again, replace=True)
    assert not unchanged.created


def test_bad_items_are_refused_with_the_position(runtime: Runtime):
    datasets = datasets_of(runtime)
    datasets.create(1, "bad")
    with pytest.raises(Exception, match=r"items\[1\]: unknown field 'colour'"):
        datasets.write(1, "bad", [{"input": "x"}, {"input": "y", "colour": 1}])
    with pytest.raises(Exception, match="line 2: invalid JSON"):
        ds.read_jsonl('{"input": "a"}\n{nope\n')


def test_items_from_traces_keep_the_link(runtime: Runtime):
    trace_id = secrets.token_hex(16)
    now = time.time_ns()
    span = Span(
        project_id=1,
        trace_id=trace_id,
        span_id=secrets.token_hex(8),
        name="chat",
        start_time_ns=now,
        end_time_ns=now + 1000,
        operation="chat",
        request_model="gpt-test",
        input=[{"role": "user", "content": "Capital of Peru?"}],
        output={"role": "assistant", "content": "Lima"},
        tags=["golden"],
    )
    runtime.traces.write_sync([span])
    datasets = datasets_of(runtime)
    datasets.create(1, "prod")
    change = datasets.from_traces(1, "prod", trace_store.TraceFilter(tags=["golden"]))
    assert change.added == 1
    _, _, rows = datasets.items(1, "prod")
    assert rows[0]["source_trace_id"] == trace_id
    assert rows[0]["input"]["messages"][0]["content"] == "Capital of Peru?"
    assert rows[0]["expected"] == "Lima"


def test_api(client):
    created = client.post("/api/datasets", json={"name": "api", "items": ITEMS[:2]})
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1
    assert client.post("/api/datasets", json={"name": "api"}).status_code == 409
    added = client.post("/api/datasets/api/items", json={"items": [ITEMS[2]]})
    assert added.json()["version"] == 2 and added.json()["item_count"] == 3
    items = client.get("/api/datasets/api/items", params={"version": 1}).json()
    assert items["version"] == 1 and len(items["items"]) == 2
    detail = client.get("/api/datasets/api").json()
    assert [v["version"] for v in detail["versions"]] == [2, 1]
    export = client.get("/api/datasets/api/export", params={"format": "jsonl"})
    assert len(export.text.splitlines()) == 3
    assert client.get("/api/datasets/api/export", params={"format": "csv"}).text.startswith("key,")
    assert [d["name"] for d in client.get("/api/datasets").json()] == ["api"]
    missing = client.get("/api/datasets/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    bad = client.post("/api/datasets/api/items", json={"items": [{"input": 3}]})
    assert bad.status_code == 400
    assert client.delete("/api/datasets/api").status_code == 204
    assert "/api/datasets/{name}/items" in client.get("/api/openapi.json").json()["paths"]


def test_cli_push_show_export(runtime: Runtime, database_url: str, tmp_path: Path):
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in ITEMS))
    runner = CliRunner()
    base = ["--database-url", database_url, "datasets"]
    pushed = runner.invoke(cli, [*base, "push", str(path)])
    assert pushed.exit_code == 0, pushed.output
    assert "qa: version 1 (3 items" in pushed.output
    again = runner.invoke(cli, [*base, "push", str(path), "--json"])
    assert json.loads(again.output)["created"] is False
    shown = runner.invoke(cli, [*base, "show", "qa"])
    assert "version 1, 3 items" in shown.output
    out = tmp_path / "out.csv"
    exported = runner.invoke(cli, [*base, "export", "qa", "--format", "csv", "-o", str(out)])
    assert exported.exit_code == 0 and out.read_text().startswith("key,country")
    listed = runner.invoke(cli, [*base, "list"])
    assert listed.output.startswith("qa\tv1")
