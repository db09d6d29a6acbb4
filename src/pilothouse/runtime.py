"""The runtime of one process: settings, database, API keys, jobs and plugins, wired once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pluggy

from pilothouse.identity.keys import KeyRing
from pilothouse.identity.passwords import generate_password, hash_password
from pilothouse.jobs import Jobs, JobSpec
from pilothouse.settings import Settings
from pilothouse.store import Database, migrate
from pilothouse.store import identity as store
from pilothouse.tracing.writer import TraceWriter

log = logging.getLogger(__name__)

DEFAULT_ORG = "default"
DEFAULT_PROJECT = "default"
#: Arbitrary constant naming the lock that serializes first-start bootstraps.
BOOTSTRAP_LOCK = 7_041_415


@dataclass(frozen=True)
class FirstAdmin:
    """Credentials created on first start; the generated ones are shown once."""

    email: str
    password: str | None
    key: str | None


class Runtime:
    """Everything a request handler or job needs, created once per process."""

    def __init__(self, settings: Settings, plugins: pluggy.PluginManager | None = None) -> None:
        # Imported here: plugin modules may import this module (a top-level import would cycle).
        from pilothouse.plugins import pm as default_pm

        self.settings = settings
        self.plugins = plugins or default_pm
        self.db = Database(settings.effective_database_url)
        self.keys = KeyRing(self.db, ttl=settings.key_cache_ttl)
        if settings.redis_url:
            from pilothouse.identity.revocations import RevocationFeed

            self.keys.feed = RevocationFeed(settings.redis_url, self.keys.evict)
        specs: list[JobSpec] = []
        self.plugins.hook.register_jobs(register=specs.append)
        self.jobs = Jobs(settings, self.db, specs)
        #: the process's one span writer (OTLP ingestion, the gateway, the SDK's server side)
        self.traces = TraceWriter(self.db, settings)
        self.state: dict[str, Any] = {}

    def migrate(self) -> None:
        migrate.upgrade(self.db)

    def bootstrap(self) -> FirstAdmin | None:
        """Create the default organization, project, admin user and admin key on first start."""
        with self.db.write() as conn:
            # Replicas starting together: one creates the administrator, the others find it.
            self.db.serialize(conn, BOOTSTRAP_LOCK)
            if store.count_users(conn):
                return None
            org = store.org_by_name(conn, DEFAULT_ORG) or store.create_org(conn, DEFAULT_ORG)
            project = store.create_project(conn, org["id"], DEFAULT_PROJECT)
            password = self.settings.admin_password or generate_password()
            user = store.create_user(
                conn,
                self.settings.admin_email,
                "Administrator",
                hash_password(password),
                is_superuser=True,
            )
            store.set_membership(conn, project["id"], user["id"], "owner")
        key, _ = self.keys.create(
            project["id"],
            "admin",
            ["admin", "gateway", "ingest", "read", "write"],
            created_by=user["id"],
            key=self.settings.admin_key or None,
        )
        return FirstAdmin(
            email=user["email"],
            password=None if self.settings.admin_password else password,
            key=None if self.settings.admin_key else key,
        )

    def start(self, *, consume_jobs: bool | None = None) -> None:
        """Start background parts (job consumer when embedded) and the plugins' startup."""
        if self.keys.feed is not None:
            self.keys.feed.start()  # revocations elsewhere evict keys here at once
        inline = self.settings.workers_inline if consume_jobs is None else consume_jobs
        if inline:
            self.jobs.start_consumer(self.settings.job_workers)
        self.plugins.hook.startup(runtime=self)

    def stop(self) -> None:
        """Flush and close: plugins first, then jobs, then the database."""
        self.plugins.hook.shutdown(runtime=self)
        if self.keys.feed is not None:
            self.keys.feed.stop()
        self.traces.close()
        self.jobs.stop_consumer()
        self.db.close()
