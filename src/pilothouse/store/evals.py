"""Tables and queries of evaluation: versioned datasets, experiments and their per-item results.

Dataset items are immutable rows valid over a range of dataset versions (``first_version`` to
``last_version``, open-ended while current): a change closes the old rows and inserts new ones,
so every version can be read back exactly and an experiment pins the version it ran on.

An experiment result is unique per (experiment, item, repeat): a resumed run skips what is
stored, and a racing duplicate insert is refused by the database, so each item is evaluated
and recorded exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from pilothouse.errors import Conflict, NotFound
from pilothouse.store.metadata import metadata
from pilothouse.store.types import BigID, JSONDoc, UTCDateTime, utcnow

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column(
        "project_id",
        BigID,
        sa.ForeignKey("projects.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("latest_version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("project_id", "name"),
)

dataset_versions = sa.Table(
    "dataset_versions",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column(
        "dataset_id", BigID, sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("item_count", sa.Integer, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("author", sa.String(320), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("dataset_id", "version"),
)

dataset_items = sa.Table(
    "dataset_items",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column(
        "dataset_id", BigID, sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("key", sa.String(64), nullable=False),
    sa.Column("first_version", sa.Integer, nullable=False),
    sa.Column("last_version", sa.Integer, nullable=True),
    sa.Column("input", JSONDoc, nullable=False),
    sa.Column("expected", JSONDoc, nullable=True),
    sa.Column("context", JSONDoc, nullable=True),
    sa.Column("metadata", JSONDoc, nullable=False),
    sa.Column("source_trace_id", sa.String(32), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_dataset_items_dataset_id_first_version", "dataset_id", "first_version"),
)

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column(
        "project_id",
        BigID,
        sa.ForeignKey("projects.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column(
        "dataset_id", BigID, sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("dataset_version", sa.Integer, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("target", JSONDoc, nullable=False),
    sa.Column("evaluators", JSONDoc, nullable=False),
    sa.Column("config", JSONDoc, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("summary", JSONDoc, nullable=True),
    sa.Column("created_by", sa.String(320), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
)

experiment_results = sa.Table(
    "experiment_results",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column(
        "experiment_id",
        BigID,
        sa.ForeignKey("experiments.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column(
        "item_id", BigID, sa.ForeignKey("dataset_items.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("repeat", sa.Integer, nullable=False),
    sa.Column("output", JSONDoc, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("latency_ms", sa.Float, nullable=True),
    sa.Column("cost_usd", sa.Float, nullable=True),
    sa.Column("trace_id", sa.String(32), nullable=True),
    sa.Column("scores", JSONDoc, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("experiment_id", "item_id", "repeat"),
)

protected_labels = sa.Table(
    "protected_labels",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column(
        "project_id", BigID, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("prompt_name", sa.String(200), nullable=False),
    sa.Column("label", sa.String(64), nullable=False),
    sa.Column("suite", JSONDoc, nullable=False),
    sa.Column("created_by", sa.String(320), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("project_id", "prompt_name", "label"),
)

online_rules = sa.Table(
    "online_eval_rules",
    metadata,
    sa.Column("id", BigID, primary_key=True, autoincrement=True),
    sa.Column(
        "project_id", BigID, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("filter", JSONDoc, nullable=False),
    sa.Column("sample_rate", sa.Float, nullable=False),
    sa.Column("evaluators", JSONDoc, nullable=False),
    sa.Column("max_per_run", sa.Integer, nullable=False),
    sa.Column("cost_cap_usd", sa.Float, nullable=True),
    sa.Column("spent_usd", sa.Float, nullable=False),
    sa.Column("scored", sa.BigInteger, nullable=False),
    sa.Column("cursor_ns", sa.BigInteger, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("project_id", "name"),
)

ITEM_FIELDS = ("input", "expected", "context", "metadata", "source_trace_id")


# --- datasets -------------------------------------------------------------------------------


def find_dataset(conn: Connection, project_id: int, name: str) -> RowMapping | None:
    query = sa.select(datasets).where(datasets.c.project_id == project_id, datasets.c.name == name)
    return conn.execute(query).mappings().first()


def get_dataset(conn: Connection, project_id: int, name: str) -> RowMapping:
    row = find_dataset(conn, project_id, name)
    if row is None:
        raise NotFound(f"dataset {name!r} not found in project {project_id}", param="name")
    return row


def dataset_by_id(conn: Connection, dataset_id: int) -> RowMapping:
    row = conn.execute(sa.select(datasets).where(datasets.c.id == dataset_id)).mappings().first()
    if row is None:
        raise NotFound(f"dataset {dataset_id} not found")
    return row


def create_dataset(conn: Connection, project_id: int, name: str, description: str) -> RowMapping:
    if find_dataset(conn, project_id, name) is not None:
        raise Conflict(f"dataset {name!r} already exists in project {project_id}", param="name")
    now = utcnow()
    result = conn.execute(
        datasets.insert().values(
            project_id=project_id,
            name=name,
            description=description,
            latest_version=0,
            created_at=now,
            updated_at=now,
        )
    )
    assert result.inserted_primary_key is not None
    return dataset_by_id(conn, result.inserted_primary_key[0])


def lock_dataset(conn: Connection, dataset_id: int) -> RowMapping:
    """The dataset row, locked until the transaction ends (PostgreSQL; SQLite locks on write)."""
    query = sa.select(datasets).where(datasets.c.id == dataset_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"dataset {dataset_id} not found")
    return row


def list_datasets(conn: Connection, project_id: int) -> list[RowMapping]:
    query = sa.select(datasets).where(datasets.c.project_id == project_id).order_by(datasets.c.name)
    return list(conn.execute(query).mappings())


def delete_dataset(conn: Connection, dataset_id: int) -> None:
    conn.execute(datasets.delete().where(datasets.c.id == dataset_id))


def live_items(conn: Connection, dataset_id: int, version: int) -> list[RowMapping]:
    """The items of ``version``, in insertion order."""
    i = dataset_items.c
    query = (
        sa.select(dataset_items)
        .where(
            i.dataset_id == dataset_id,
            i.first_version <= version,
            sa.or_(i.last_version.is_(None), i.last_version >= version),
        )
        .order_by(i.id)
    )
    return list(conn.execute(query).mappings())


def close_items(conn: Connection, item_ids: Sequence[int], last_version: int) -> None:
    if item_ids:
        conn.execute(
            dataset_items.update()
            .where(dataset_items.c.id.in_(list(item_ids)))
            .values(last_version=last_version)
        )


def insert_items(
    conn: Connection, dataset_id: int, version: int, items: Sequence[dict[str, Any]]
) -> None:
    if not items:
        return
    now = utcnow()
    rows = [
        {
            "dataset_id": dataset_id,
            "key": item["key"],
            "first_version": version,
            "last_version": None,
            "input": item["input"],
            "expected": item.get("expected"),
            "context": item.get("context"),
            "metadata": item.get("metadata") or {},
            "source_trace_id": item.get("source_trace_id"),
            "created_at": now,
        }
        for item in items
    ]
    conn.execute(dataset_items.insert(), rows)


def add_version(
    conn: Connection, dataset_id: int, version: int, item_count: int, message: str, author: str
) -> RowMapping:
    now = utcnow()
    conn.execute(
        dataset_versions.insert().values(
            dataset_id=dataset_id,
            version=version,
            item_count=item_count,
            message=message,
            author=author,
            created_at=now,
        )
    )
    conn.execute(
        datasets.update()
        .where(datasets.c.id == dataset_id)
        .values(latest_version=version, updated_at=now)
    )
    return get_version(conn, dataset_id, version)


def get_version(conn: Connection, dataset_id: int, version: int) -> RowMapping:
    v = dataset_versions.c
    query = sa.select(dataset_versions).where(v.dataset_id == dataset_id, v.version == version)
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"dataset version {version} not found", param="version")
    return row


def list_versions(conn: Connection, dataset_id: int) -> list[RowMapping]:
    v = dataset_versions.c
    query = sa.select(dataset_versions).where(v.dataset_id == dataset_id).order_by(v.version.desc())
    return list(conn.execute(query).mappings())


def items_by_id(conn: Connection, item_ids: Sequence[int]) -> dict[int, RowMapping]:
    if not item_ids:
        return {}
    query = sa.select(dataset_items).where(dataset_items.c.id.in_(list(item_ids)))
    return {row["id"]: row for row in conn.execute(query).mappings()}


# --- experiments ----------------------------------------------------------------------------


def create_experiment(conn: Connection, **values: Any) -> RowMapping:
    values.setdefault("status", "pending")
    values.setdefault("created_at", utcnow())
    result = conn.execute(experiments.insert().values(**values))
    assert result.inserted_primary_key is not None
    return get_experiment(conn, result.inserted_primary_key[0])


def get_experiment(conn: Connection, experiment_id: int) -> RowMapping:
    query = sa.select(experiments).where(experiments.c.id == experiment_id)
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"experiment {experiment_id} not found", param="experiment_id")
    return row


def list_experiments(
    conn: Connection, project_id: int, dataset_id: int | None = None, limit: int = 100
) -> list[RowMapping]:
    e = experiments.c
    query = sa.select(experiments).where(e.project_id == project_id)
    if dataset_id is not None:
        query = query.where(e.dataset_id == dataset_id)
    return list(conn.execute(query.order_by(e.id.desc()).limit(limit)).mappings())


def update_experiment(conn: Connection, experiment_id: int, **values: Any) -> None:
    conn.execute(experiments.update().where(experiments.c.id == experiment_id).values(**values))


def done_keys(conn: Connection, experiment_id: int) -> set[tuple[int, int]]:
    """(item_id, repeat) of every stored result: what a resumed run skips."""
    r = experiment_results.c
    query = sa.select(r.item_id, r.repeat).where(r.experiment_id == experiment_id)
    return {(row.item_id, row.repeat) for row in conn.execute(query)}


def insert_result(conn: Connection, **values: Any) -> bool:
    """Store one result; False when (experiment, item, repeat) was already stored."""
    r = experiment_results.c
    exists = conn.execute(
        sa.select(r.id).where(
            r.experiment_id == values["experiment_id"],
            r.item_id == values["item_id"],
            r.repeat == values["repeat"],
        )
    ).first()
    if exists is not None:
        return False
    values.setdefault("created_at", utcnow())
    conn.execute(experiment_results.insert().values(**values))
    return True


def results_of(
    conn: Connection, experiment_id: int, *, after_id: int | None = None, limit: int | None = None
) -> list[RowMapping]:
    """Results in item order; ``after_id``/``limit`` page by result id."""
    r = experiment_results.c
    query = sa.select(experiment_results).where(r.experiment_id == experiment_id)
    if after_id is not None or limit is not None:
        query = query.where(r.id > (after_id or 0)).order_by(r.id).limit(limit)
    else:
        query = query.order_by(r.item_id, r.repeat)
    return list(conn.execute(query).mappings())


# --- protected labels -----------------------------------------------------------------------


def get_protection(conn: Connection, project_id: int, prompt: str, label: str) -> RowMapping | None:
    p = protected_labels.c
    query = sa.select(protected_labels).where(
        p.project_id == project_id, p.prompt_name == prompt, p.label == label
    )
    return conn.execute(query).mappings().first()


def set_protection(
    conn: Connection, project_id: int, prompt: str, label: str, suite: Any, created_by: str
) -> RowMapping:
    p = protected_labels.c
    conn.execute(
        protected_labels.delete().where(
            p.project_id == project_id, p.prompt_name == prompt, p.label == label
        )
    )
    conn.execute(
        protected_labels.insert().values(
            project_id=project_id,
            prompt_name=prompt,
            label=label,
            suite=suite,
            created_by=created_by,
            created_at=utcnow(),
        )
    )
    found = get_protection(conn, project_id, prompt, label)
    assert found is not None
    return found


def remove_protection(conn: Connection, project_id: int, prompt: str, label: str) -> bool:
    p = protected_labels.c
    result = conn.execute(
        protected_labels.delete().where(
            p.project_id == project_id, p.prompt_name == prompt, p.label == label
        )
    )
    return bool(result.rowcount)


def list_protections(conn: Connection, project_id: int) -> list[RowMapping]:
    p = protected_labels.c
    query = (
        sa.select(protected_labels)
        .where(p.project_id == project_id)
        .order_by(p.prompt_name, p.label)
    )
    return list(conn.execute(query).mappings())


# --- online evaluation rules ----------------------------------------------------------------


def create_rule(conn: Connection, **values: Any) -> RowMapping:
    o = online_rules.c
    exists = conn.execute(
        sa.select(o.id).where(o.project_id == values["project_id"], o.name == values["name"])
    ).first()
    if exists is not None:
        raise Conflict(f"online evaluation rule {values['name']!r} already exists", param="name")
    values.update(spent_usd=0.0, scored=0, enabled=True, created_at=utcnow())
    result = conn.execute(online_rules.insert().values(**values))
    assert result.inserted_primary_key is not None
    return get_rule(conn, result.inserted_primary_key[0])


def get_rule(conn: Connection, rule_id: int) -> RowMapping:
    row = conn.execute(sa.select(online_rules).where(online_rules.c.id == rule_id)).mappings()
    found = row.first()
    if found is None:
        raise NotFound(f"online evaluation rule {rule_id} not found")
    return found


def list_rules(conn: Connection, project_id: int | None = None) -> list[RowMapping]:
    query = sa.select(online_rules).order_by(online_rules.c.id)
    if project_id is not None:
        query = query.where(online_rules.c.project_id == project_id)
    return list(conn.execute(query).mappings())


def update_rule(conn: Connection, rule_id: int, **values: Any) -> None:
    conn.execute(online_rules.update().where(online_rules.c.id == rule_id).values(**values))


def delete_rule(conn: Connection, rule_id: int) -> None:
    conn.execute(online_rules.delete().where(online_rules.c.id == rule_id))
