"""Revocations reach other processes at once through Redis pub/sub, not after the cache TTL."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest
import redis

from pilothouse.app import create_app
from pilothouse.errors import Unauthorized
from pilothouse.identity.keys import ApiKey, KeyRing, hash_key
from pilothouse.identity.revocations import CHANNEL, RevocationFeed
from pilothouse.runtime import Runtime
from pilothouse.store import identity as store
from tests.conftest import ADMIN_KEY, LiveServer, make_settings

#: Far longer than any test: only an eviction message can end a cached entry.
LONG_TTL = 3600.0

Replica = Callable[[], Runtime]


@pytest.fixture
def replica(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[Replica]:
    """Runtimes sharing one database and one Redis, like the processes of one deployment."""
    stack = contextlib.ExitStack()

    def start() -> Runtime:
        settings = make_settings(
            tmp_path, database_url, redis_url=redis_url, key_cache_ttl=LONG_TTL
        )
        runtime = Runtime(settings)
        runtime.migrate()
        runtime.bootstrap()
        stack.callback(runtime.db.close)
        return runtime

    with stack:
        yield start


def listen(runtime: Runtime, stack: contextlib.ExitStack) -> None:
    feed = runtime.keys.feed
    assert feed is not None
    feed.start()
    stack.callback(feed.stop)
    assert feed.listening.wait(5), "the revocation listener did not subscribe"


def refused_soon(keys: KeyRing, key: str, timeout: float = 5.0) -> float:
    """Seconds until ``keys`` refuses ``key`` (fails after ``timeout``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            keys.verify(key)
        except Unauthorized:
            return time.monotonic() - started
        time.sleep(0.01)
    raise AssertionError(f"the key still works after {timeout} s")


def test_revocation_in_one_process_evicts_the_key_in_another(replica: Replica) -> None:
    one, other = replica(), replica()
    with contextlib.ExitStack() as stack:
        listen(other, stack)
        key, row = one.keys.create(1, "app", ["gateway"])
        assert other.keys.verify(key, "gateway").id == row["id"]  # cached for an hour now
        one.keys.revoke(row["id"])
        assert refused_soon(other.keys, key) < 2.0


def test_deleting_a_project_evicts_its_keys_elsewhere(replica: Replica) -> None:
    one, other = replica(), replica()
    with contextlib.ExitStack() as stack:
        listen(other, stack)
        with one.db.write() as conn:
            project_id = store.create_project(conn, 1, "temporary")["id"]
        key, _ = one.keys.create(project_id, "app", ["gateway"])
        other.keys.verify(key)
        with one.db.write() as conn:  # as DELETE /api/projects/{id} does
            store.delete_project(conn, project_id)
        one.keys.forget_project(project_id)
        refused_soon(other.keys, key)


def test_a_new_key_works_at_once_where_it_was_unknown(replica: Replica) -> None:
    one, other = replica(), replica()
    with contextlib.ExitStack() as stack:
        listen(other, stack)
        key = "ph-" + "k" * 40
        with pytest.raises(Unauthorized):
            other.keys.verify(key)  # remembered as unknown for a while
        one.keys.create(1, "app", ["gateway"], key=key)
        deadline = time.monotonic() + 1.0  # less than the negative cache's 2 s
        while True:
            try:
                other.keys.verify(key)
                break
            except Unauthorized:
                assert time.monotonic() < deadline
                time.sleep(0.01)


def test_revoked_through_one_server_refused_by_the_other(replica: Replica) -> None:
    """End to end: two servers; the key is revoked through one's API, used on the other's /v1."""
    one, other = replica(), replica()
    with LiveServer(create_app(one)) as first, LiveServer(create_app(other)) as second:
        feed = other.keys.feed
        assert feed is not None and feed.listening.wait(5)
        key, row = one.keys.create(1, "app", ["gateway"])
        client = openai.OpenAI(base_url=second.url + "/v1", api_key=key, max_retries=0)
        with client:
            assert client.models.list().data  # the second server caches the key
            admin = openai.OpenAI(base_url=first.url, api_key=ADMIN_KEY, max_retries=0)
            with admin:
                admin.delete(f"/api/projects/1/keys/{row['id']}", cast_to=object)
            deadline = time.monotonic() + 2.0
            while True:
                try:
                    client.models.list()
                except openai.AuthenticationError:
                    break
                assert time.monotonic() < deadline, "the other server still accepts the key"
                time.sleep(0.02)


def test_a_resubscribed_listener_forgets_everything(redis_url: str) -> None:
    evicted: list[str] = []
    feed = RevocationFeed(redis_url, evicted.append)
    feed.start()
    try:
        assert feed.listening.wait(5)
        assert evicted[0] == "*"  # anything published before it listened was missed
        client = redis.Redis.from_url(redis_url)
        with contextlib.closing(client):
            client.publish(CHANNEL, "key:abc")
            deadline = time.monotonic() + 5
            while "key:abc" not in evicted and time.monotonic() < deadline:
                time.sleep(0.01)
        assert "key:abc" in evicted
    finally:
        feed.stop()


def test_redis_down_never_fails_a_revocation(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    runtime.keys.feed = RevocationFeed("redis://127.0.0.1:1/0", runtime.keys.evict)
    key, row = runtime.keys.create(1, "app", ["read"])
    runtime.keys.verify(key)
    with caplog.at_level(logging.WARNING, "pilothouse.identity.revocations"):
        runtime.keys.revoke(row["id"])
    assert "could not publish key eviction" in caplog.text
    with pytest.raises(Unauthorized):
        runtime.keys.verify(key)  # this process applied it
    runtime.keys.feed.stop()


class RacingKeyRing(KeyRing):
    """Its database read is overtaken by an eviction (a revocation arriving meanwhile)."""

    def _load(self, key_hash: str) -> ApiKey | None:
        found = super()._load(key_hash)
        self.evict(f"key:{key_hash}")
        return found


def test_a_lookup_overtaken_by_an_eviction_is_not_cached(runtime: Runtime) -> None:
    key, _ = runtime.keys.create(1, "app", ["read"])
    keys = RacingKeyRing(runtime.db, ttl=LONG_TTL)
    keys.verify(key)
    assert hash_key(key) not in keys._cache
