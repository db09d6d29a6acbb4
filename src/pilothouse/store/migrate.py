"""Schema migrations with Alembic: upgrade, current revision, history."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from pilothouse.store.engine import Database

#: Arbitrary constant naming Pilothouse's PostgreSQL advisory lock for migrations.
_PG_MIGRATION_LOCK = 7_041_414


def _config(conn: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "pilothouse.store:migrations")
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


@contextmanager
def _migration_connection(db: Database) -> Iterator[Connection]:
    with db.engine.connect() as conn:
        if db.dialect == "postgresql":
            # Replicas starting together: one migrates, the others wait and find nothing to do.
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({_PG_MIGRATION_LOCK})")
            conn.commit()
        try:
            yield conn
        finally:
            if db.dialect == "postgresql":
                conn.rollback()
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_PG_MIGRATION_LOCK})")
                conn.commit()


def upgrade(db: Database, target: str = "heads") -> None:
    """Bring the schema up to ``target`` (all branch heads by default)."""
    with _migration_connection(db) as conn:
        command.upgrade(_config(conn), target)
        conn.commit()


def current(db: Database) -> set[str]:
    """Revisions the database is at."""
    with db.engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


@functools.cache
def _scripts() -> ScriptDirectory:
    # Parsed once per process: /readyz asks on every probe.
    return ScriptDirectory.from_config(_config())


@functools.cache
def heads() -> frozenset[str]:
    """Revisions the code expects."""
    return frozenset(_scripts().get_heads())


def applied(db: Database) -> set[str]:
    """Every revision the database has, including those implied by the recorded heads."""
    revs = current(db)
    if not revs:
        return set()
    script = _scripts()
    # Alembic records only the heads of its version graph: a branch that ``depends_on``
    # core_0001 makes core_0001 implied, no longer listed. Walk down to find all of them.
    walked = script.revision_map.iterate_revisions(tuple(revs), "base", implicit_base=True)
    return {rev.revision for rev in walked if rev is not None}


def is_current(db: Database) -> bool:
    """Whether every migration of every branch has been applied."""
    return heads() <= applied(db)


@dataclass(frozen=True)
class Revision:
    revision: str
    down_revision: str | None
    branch: str
    message: str


def history() -> list[Revision]:
    """Every migration, newest first."""
    out = []
    for script in ScriptDirectory.from_config(_config()).walk_revisions():
        down = script.down_revision
        out.append(
            Revision(
                revision=script.revision,
                down_revision=down if isinstance(down, str) or down is None else ",".join(down),
                branch=",".join(sorted(script.branch_labels)),
                message=(script.doc or "").strip(),
            )
        )
    return out
