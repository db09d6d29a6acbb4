"""Identity tables and queries on both backends: constraints, cascades, pagination."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from pilothouse.errors import Conflict, NotFound
from pilothouse.runtime import Runtime
from pilothouse.store import identity as store


def test_names_are_unique_where_they_must_be(runtime: Runtime):
    with runtime.db.write() as conn:
        org = store.create_org(conn, "acme")
        store.create_project(conn, org["id"], "default")  # same name, other organization
        with pytest.raises(Conflict):
            store.create_project(conn, org["id"], "default")
        with pytest.raises(Conflict):
            store.create_org(conn, "acme")
        with pytest.raises(Conflict):
            store.create_user(conn, "ADMIN@localhost", "x", "hash")  # emails ignore case
        with pytest.raises(NotFound):
            store.create_project(conn, 999, "orphan")


def test_deleting_a_project_deletes_its_keys_and_memberships(runtime: Runtime):
    _, key = runtime.keys.create(1, "k", ["read"])
    with runtime.db.write() as conn:
        store.delete_project(conn, 1)
    with runtime.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(store.api_keys)).scalar() == 0
        count = conn.execute(sa.select(sa.func.count()).select_from(store.memberships)).scalar()
        assert count == 0
        assert store.count_users(conn) == 1  # users stay
    with pytest.raises(NotFound), runtime.db.read() as conn:
        store.get_key(conn, key["id"])


def test_a_failed_write_rolls_back(runtime: Runtime):
    with pytest.raises(Conflict), runtime.db.write() as conn:
        store.create_org(conn, "half-done")
        store.create_org(conn, "half-done")
    with runtime.db.read() as conn:
        assert store.org_by_name(conn, "half-done") is None


def test_page_walks_rows_in_id_order(runtime: Runtime):
    with runtime.db.write() as conn:
        for i in range(7):
            store.create_org(conn, f"org{i}")
    seen: list[int] = []
    after = None
    with runtime.db.read() as conn:
        while True:
            rows, after = store.page(conn, store.organizations, after=after, limit=3)
            seen.extend(r["id"] for r in rows)
            if after is None:
                break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 8


def test_timestamps_are_utc_aware_on_both_backends(runtime: Runtime):
    with runtime.db.read() as conn:
        project = store.get_project(conn, 1)
    assert project["created_at"].utcoffset().total_seconds() == 0
    assert project["settings"] == {}
