"""API keys: generated once, stored only as a SHA-256 hash plus a short visible prefix.

Keys are high-entropy random tokens, so a fast hash is safe (unlike passwords). Lookups are
served from an in-process cache so the gateway and ingestion never wait on the database for a
known key. A revocation in this process applies at once; in other processes at once too when
Redis is configured (:mod:`pilothouse.identity.revocations`), else within ``key_cache_ttl``
seconds.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pilothouse.errors import Forbidden, Unauthorized
from pilothouse.identity.access import Principal
from pilothouse.store import Database
from pilothouse.store import identity as store
from pilothouse.store.types import utcnow

if TYPE_CHECKING:
    from pilothouse.identity.revocations import RevocationFeed

KEY_PREFIX = "ph-"
VISIBLE_CHARS = 10
#: Seconds an unknown key is remembered as unknown (bounds database load from bad keys).
NEGATIVE_TTL = 2.0


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def visible_prefix(key: str) -> str:
    return key[:VISIBLE_CHARS]


@dataclass(frozen=True)
class ApiKey:
    """A verified API key as the hot path sees it."""

    id: int
    name: str
    project_id: int
    org_id: int
    scopes: frozenset[str]
    limits: dict[str, Any]
    expires_at: datetime | None

    @property
    def principal(self) -> Principal:
        return Principal(
            kind="key",
            id=self.id,
            name=self.name,
            grants={self.project_id: self.scopes},
            admin_orgs=frozenset({self.org_id}) if "admin" in self.scopes else frozenset(),
            project_id=self.project_id,
        )


class KeyRing:
    """Creates, verifies and revokes API keys, with an in-process cache."""

    def __init__(self, db: Database, ttl: float = 30.0) -> None:
        self.db = db
        self.ttl = ttl
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._lock = threading.Lock()
        #: bumped by every eviction, so a lookup racing one does not cache what it read before
        self._generation = 0
        #: tells other processes about evictions (set by the runtime when Redis is configured)
        self.feed: RevocationFeed | None = None

    def create(
        self,
        project_id: int,
        name: str,
        scopes: list[str],
        *,
        expires_at: datetime | None = None,
        limits: dict[str, Any] | None = None,
        created_by: int | None = None,
        key: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Create a key; returns the plaintext (shown once) and the stored row."""
        key = key or generate_key()
        with self.db.write() as conn:
            row = store.insert_key(
                conn,
                project_id=project_id,
                name=name,
                prefix=visible_prefix(key),
                key_hash=hash_key(key),
                scopes=sorted(set(scopes)),
                limits=limits,
                expires_at=expires_at,
                created_by=created_by,
            )
        self.forget(hash_key(key))  # may be remembered as unknown
        return key, dict(row)

    def revoke(self, key_id: int) -> dict[str, Any]:
        with self.db.write() as conn:
            row = store.revoke_key(conn, key_id)
        self.forget(row["key_hash"])
        return dict(row)

    def forget(self, key_hash: str) -> None:
        """Drop a key from this process's cache and, through the feed, from the others'."""
        self.evict(f"key:{key_hash}")
        if self.feed is not None:
            self.feed.publish(f"key:{key_hash}")

    def forget_project(self, project_id: int) -> None:
        """Drop the cached keys of a project (after deleting it: its keys went with it)."""
        self.evict(f"project:{project_id}")
        if self.feed is not None:
            self.feed.publish(f"project:{project_id}")

    def evict(self, what: str) -> None:
        """Drop cached keys here only: ``key:<hash>``, ``project:<id>`` or ``*`` (all)."""
        kind, _, value = what.partition(":")
        with self._lock:
            self._generation += 1
            if kind == "key":
                self._cache.pop(value, None)
            elif kind == "project" and value.isdigit():
                project_id = int(value)
                for key_hash, (_, found) in list(self._cache.items()):
                    if found is not None and found.project_id == project_id:
                        del self._cache[key_hash]
            elif what == "*":
                self._cache.clear()

    def _load(self, key_hash: str) -> ApiKey | None:
        with self.db.read() as conn:
            row = store.key_by_hash(conn, key_hash)
        if row is None or row["revoked_at"] is not None:
            return None
        return ApiKey(
            id=row["id"],
            name=row["name"],
            project_id=row["project_id"],
            org_id=row["org_id"],
            scopes=frozenset(row["scopes"]),
            limits=dict(row["limits"]),
            expires_at=row["expires_at"],
        )

    def lookup(self, key: str) -> ApiKey | None:
        """The live key for this plaintext, or None (unknown, revoked or expired)."""
        key_hash = hash_key(key)
        now = time.monotonic()
        hit = self._cache.get(key_hash)
        if hit is None or hit[0] < now:
            generation = self._generation
            found = self._load(key_hash)
            ttl = self.ttl if found is not None else NEGATIVE_TTL
            with self._lock:
                if self._generation == generation:
                    self._cache[key_hash] = (now + ttl, found)
        else:
            found = hit[1]
        if found is not None and found.expires_at is not None and found.expires_at <= utcnow():
            return None
        return found

    def verify(self, key: str, scope: str | None = None) -> ApiKey:
        """The key, or Unauthorized/Forbidden with a clear reason."""
        found = self.lookup(key)
        if found is None:
            raise Unauthorized("invalid, expired or revoked API key", code="invalid_api_key")
        if scope is not None and scope not in found.scopes:
            raise Forbidden(f"this API key lacks the {scope!r} scope", code="insufficient_scope")
        return found
