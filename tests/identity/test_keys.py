"""The key ring: verification from memory, scopes, expiry and immediate revocation."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from pilothouse.errors import Forbidden, Unauthorized
from pilothouse.identity.keys import KeyRing, hash_key
from pilothouse.runtime import Runtime
from pilothouse.store import identity as store
from pilothouse.store.types import utcnow


def test_verify_serves_known_keys_without_the_database(runtime: Runtime):
    key, row = runtime.keys.create(1, "gw", ["gateway"], limits={"rpm": 10})
    found = runtime.keys.verify(key, "gateway")
    assert (found.id, found.project_id, found.org_id) == (row["id"], 1, 1)
    assert found.scopes == {"gateway"} and found.limits == {"rpm": 10}

    runtime.db.close()  # later lookups are served from memory
    runtime.db.engine = sa.create_engine("sqlite:///file:/nonexistent/none.db?mode=ro&uri=true")
    assert runtime.keys.verify(key, "gateway").id == row["id"]


def test_wrong_scope_and_unknown_key(runtime: Runtime):
    key, _ = runtime.keys.create(1, "gw", ["gateway"])
    with pytest.raises(Forbidden) as forbidden:
        runtime.keys.verify(key, "ingest")
    assert forbidden.value.code == "insufficient_scope"
    with pytest.raises(Unauthorized) as unknown:
        runtime.keys.verify("ph-nope", "gateway")
    assert unknown.value.code == "invalid_api_key"


def test_revocation_applies_at_once_despite_the_cache(runtime: Runtime):
    key, row = runtime.keys.create(1, "temp", ["read"])
    runtime.keys.verify(key, "read")  # cached now
    runtime.keys.revoke(row["id"])
    with pytest.raises(Unauthorized):
        runtime.keys.verify(key)


def test_revocation_in_another_process_applies_after_the_ttl(runtime: Runtime):
    key, row = runtime.keys.create(1, "temp", ["read"])
    other = KeyRing(runtime.db, ttl=0.0)  # another process, with no caching
    other.verify(key)
    runtime.keys.revoke(row["id"])
    with pytest.raises(Unauthorized):
        other.verify(key)


def test_expired_key_is_refused(runtime: Runtime):
    key, _ = runtime.keys.create(1, "old", ["read"], expires_at=utcnow() - timedelta(seconds=1))
    with pytest.raises(Unauthorized):
        runtime.keys.verify(key)


def test_only_hash_and_prefix_are_stored(runtime: Runtime):
    key, row = runtime.keys.create(1, "k", ["read"])
    with runtime.db.read() as conn:
        stored = store.get_key(conn, row["id"])
    assert stored["key_hash"] == hash_key(key) and stored["prefix"] == key[:10]
    assert key not in {str(v) for v in stored.values()}
