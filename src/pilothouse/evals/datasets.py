"""Versioned datasets: items from the API, JSONL/CSV files and production traces; export back.

An item is ``input`` (prompt variables as an object, or ``{"messages": [...]}``, or a string),
an optional ``expected`` output, an optional ``context`` (for RAG items) and ``metadata``. Each
item has a ``key`` that identifies it across versions: given as ``key`` (or ``id``) or derived
from its content. Every change makes a new version; a version never changes afterwards.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.engine import RowMapping

from pilothouse.errors import BadRequest
from pilothouse.store import Database
from pilothouse.store import evals as store
from pilothouse.store import traces as trace_store

#: Top-level fields of a dataset item; in a flat row every other field is an input variable.
ITEM_KEYS = frozenset({"key", "id", "input", "expected", "context", "metadata", "source_trace_id"})
MAX_ITEMS = 100_000


@dataclass(frozen=True)
class Change:
    """What a write did: the version it made (or the unchanged latest) and item counts."""

    dataset: RowMapping
    version: int
    created: bool
    added: int
    removed: int
    item_count: int


def content_key(item: dict[str, Any]) -> str:
    """A stable key from an item's content, for items given without one."""
    raw = orjson.dumps(
        [item.get("input"), item.get("expected"), item.get("context")],
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(raw).hexdigest()[:16]


def normalize_item(raw: Any, where: str = "item") -> dict[str, Any]:
    """An item in its stored shape, or BadRequest naming what is wrong."""
    if not isinstance(raw, dict):
        raise BadRequest(f"{where}: expected an object", param=where)
    if "input" in raw:
        unknown = set(raw) - ITEM_KEYS
        if unknown:
            raise BadRequest(f"{where}: unknown field {sorted(unknown)[0]!r}", param=where)
        value = raw["input"]
    else:
        value = {k: v for k, v in raw.items() if k not in ITEM_KEYS}
        if not value:
            raise BadRequest(f"{where}: no input (give 'input' or input variables)", param=where)
    if not isinstance(value, dict | str | list):
        raise BadRequest(f"{where}.input: expected an object, a string or messages", param=where)
    if isinstance(value, list):
        value = {"messages": value}
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise BadRequest(f"{where}.metadata: expected an object", param=where)
    item = {
        "input": value,
        "expected": raw.get("expected"),
        "context": raw.get("context"),
        "metadata": metadata,
        "source_trace_id": raw.get("source_trace_id"),
    }
    key = raw.get("key", raw.get("id"))
    if key is not None and not isinstance(key, str | int):
        raise BadRequest(f"{where}.key: expected a string", param=where)
    item["key"] = str(key)[:64] if key is not None else content_key(item)
    return item


def _unique_keys(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give repeated keys a suffix, so identical rows stay separate items."""
    seen: dict[str, int] = {}
    for item in items:
        n = seen.get(item["key"], 0)
        seen[item["key"]] = n + 1
        if n:
            item["key"] = f"{item['key'][:58]}-{n + 1}"
    return items


def _same(row: RowMapping, item: dict[str, Any]) -> bool:
    return all(row[f] == item.get(f) for f in ("input", "expected", "context", "metadata"))


def public_item(row: RowMapping) -> dict[str, Any]:
    """An item as the API and exports show it."""
    out: dict[str, Any] = {"key": row["key"], "input": row["input"]}
    for name in ("expected", "context"):
        if row[name] is not None:
            out[name] = row[name]
    if row["metadata"]:
        out["metadata"] = row["metadata"]
    if row["source_trace_id"]:
        out["source_trace_id"] = row["source_trace_id"]
    return out


class Datasets:
    """Datasets of every project, backed by the database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        project_id: int,
        name: str,
        *,
        description: str = "",
        items: Sequence[Any] = (),
        author: str = "",
        message: str = "",
    ) -> Change:
        if not name or len(name) > 200 or name.strip() != name:
            raise BadRequest("name: 1 to 200 characters, no surrounding spaces", param="name")
        with self.db.write() as conn:
            row = store.create_dataset(conn, project_id, name, description)
        if items:
            return self.write(project_id, name, items, author=author, message=message or "create")
        with self.db.write() as conn:
            store.add_version(conn, row["id"], 1, 0, message or "create", author)
            row = store.dataset_by_id(conn, row["id"])
        return Change(row, 1, True, 0, 0, 0)

    def write(
        self,
        project_id: int,
        name: str,
        items: Iterable[Any],
        *,
        replace: bool = False,
        remove: Iterable[str] = (),
        author: str = "",
        message: str = "",
    ) -> Change:
        """Add items (``replace``: make the dataset exactly ``items``) and remove keys; a new
        version unless nothing changed. Unchanged items keep their identity across versions."""
        new = _unique_keys([normalize_item(raw, f"items[{i}]") for i, raw in enumerate(items)])
        if len(new) > MAX_ITEMS:
            raise BadRequest(f"at most {MAX_ITEMS} items per write", param="items")
        dropping = set(remove)
        with self.db.write() as conn:
            dataset = store.get_dataset(conn, project_id, name)
            dataset = store.lock_dataset(conn, dataset["id"])
            latest = dataset["latest_version"]
            current = store.live_items(conn, dataset["id"], latest) if latest else []
            by_key = {row["key"]: row for row in current}
            incoming = {item["key"]: item for item in new}
            closing = [
                row["id"]
                for key, row in by_key.items()
                if key in dropping
                or (replace and key not in incoming)
                or (key in incoming and not _same(row, incoming[key]))
            ]
            adding = [
                item
                for key, item in incoming.items()
                if key not in by_key or not _same(by_key[key], item)
            ]
            if not closing and not adding and latest:
                return Change(dataset, latest, False, 0, 0, len(current))
            version = latest + 1
            store.close_items(conn, closing, latest)
            store.insert_items(conn, dataset["id"], version, adding)
            count = len(current) - len(closing) + len(adding)
            store.add_version(conn, dataset["id"], version, count, message, author)
            dataset = store.dataset_by_id(conn, dataset["id"])
        removed = len(closing) - sum(1 for item in adding if item["key"] in by_key)
        return Change(dataset, version, True, len(adding), removed, count)

    def items(
        self, project_id: int, name: str, version: int | None = None
    ) -> tuple[RowMapping, int, list[RowMapping]]:
        """The dataset, the version read (default latest) and its items."""
        with self.db.read() as conn:
            dataset = store.get_dataset(conn, project_id, name)
            number = version or dataset["latest_version"]
            store.get_version(conn, dataset["id"], number)
            return dataset, number, store.live_items(conn, dataset["id"], number)

    def from_traces(
        self,
        project_id: int,
        name: str,
        where: trace_store.TraceFilter,
        *,
        limit: int = 100,
        expected_from_output: bool = True,
        author: str = "",
    ) -> Change:
        """Add the traces matching ``where`` as items: input from the trace's input, expected
        from its output, the trace id kept in ``source_trace_id``."""
        with self.db.read() as conn:
            store.get_dataset(conn, project_id, name)
            rows = trace_store.list_traces(conn, project_id, where, limit=limit)
        items = [trace_item(row, expected_from_output) for row in rows]
        return self.write(
            project_id, name, items, author=author, message=f"{len(items)} item(s) from traces"
        )


def _maybe_json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def trace_item(row: RowMapping, expected_from_output: bool = True) -> dict[str, Any]:
    value = _maybe_json(row["input"])
    if isinstance(value, list):
        value = {"messages": value}
    elif not isinstance(value, dict):
        value = {"input": "" if value is None else str(value)}
    output = _maybe_json(row["output"]) if expected_from_output else None
    if isinstance(output, dict) and "content" in output:
        output = output["content"]
    return {
        "key": row["trace_id"][:32],
        "input": value,
        "expected": output,
        "metadata": {"trace_name": row["name"], "model": row["model"]},
        "source_trace_id": row["trace_id"],
    }


# --- files ------------------------------------------------------------------------------------


def read_jsonl(text: str) -> list[Any]:
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"line {number}: invalid JSON ({exc})") from None
    return out


def _cell(value: str) -> Any:
    """A CSV cell: JSON objects and arrays are decoded, everything else stays text."""
    stripped = value.strip()
    if stripped[:1] in ("{", "["):
        try:
            return orjson.loads(stripped)
        except orjson.JSONDecodeError:
            return value
    return value


def read_csv(text: str) -> list[dict[str, Any]]:
    """Rows of a CSV file with a header; columns other than the item fields are variables."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise BadRequest("the CSV file has no header row")
    rows = []
    for row in reader:
        rows.append({k: _cell(v) for k, v in row.items() if k is not None and v != ""})
    return rows


def read_file(name: str, text: str) -> list[Any]:
    """Items of a ``.jsonl`` or ``.csv`` file."""
    lower = name.lower()
    if lower.endswith(".csv"):
        return read_csv(text)
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        if lower.endswith(".json"):
            data = orjson.loads(text)
            if not isinstance(data, list):
                raise BadRequest(f"{name}: expected a JSON array of items")
            return data
        return read_jsonl(text)
    raise BadRequest(f"{name}: expected a .jsonl or .csv file")


def to_jsonl(rows: Iterable[RowMapping]) -> Iterator[str]:
    for row in rows:
        yield orjson.dumps(public_item(row)).decode() + "\n"


def to_csv(rows: Sequence[RowMapping]) -> str:
    """Flat CSV: input variables as columns when every input is an object without messages."""
    flat = all(isinstance(r["input"], dict) and "messages" not in r["input"] for r in rows)
    variables: list[str] = []
    if flat:
        for r in rows:
            variables.extend(k for k in r["input"] if k not in variables and k not in ITEM_KEYS)
    columns = ["key", *(variables if flat else ["input"]), "expected", "context", "metadata"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)

    def text(value: Any) -> str:
        if value is None:
            return ""
        return value if isinstance(value, str) else orjson.dumps(value).decode()

    for r in rows:
        values = [r["input"].get(v) for v in variables] if flat else [r["input"]]
        meta = r["metadata"] or None
        writer.writerow(
            [r["key"], *map(text, values), *map(text, [r["expected"], r["context"], meta])]
        )
    return out.getvalue()
