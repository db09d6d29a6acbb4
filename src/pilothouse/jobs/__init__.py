"""Background jobs on huey: one small interface every feature uses.

Embedded mode (no Redis) keeps the queue in ``<data_dir>/jobs.db`` (``SqliteHuey``) and runs a
consumer thread pool inside the server. With ``PILOTHOUSE_REDIS_URL`` the queue lives in Redis
(``RedisHuey``) and any number of ``pilothouse worker`` processes, on any machines, consume it.

Features declare jobs with :class:`JobSpec` through the ``register_jobs`` plugin hook. A job
function receives a :class:`JobContext` (settings and database) plus its keyword arguments.
Status of every run is kept in the ``jobs`` table and served by ``GET /api/jobs``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from huey import RedisHuey, SqliteHuey, crontab, signals
from huey.api import Huey, Task
from huey.consumer import Consumer

from pilothouse.errors import BadRequest, NotFound
from pilothouse.settings import Settings
from pilothouse.store import Database
from pilothouse.store import jobs as store

log = logging.getLogger(__name__)

#: Longest pause between polls of an idle queue (huey's default of 10 s delays new jobs).
MAX_POLL_DELAY = 1.0


@dataclass(frozen=True)
class JobContext:
    """What a running job may use."""

    settings: Settings
    db: Database


@dataclass(frozen=True)
class JobSpec:
    """A background job: a name, a function, retry policy and an optional schedule."""

    name: str
    func: Callable[..., Any]
    retries: int = 3
    retry_delay: float = 1.0
    #: multiplier applied to the delay after each failed attempt (exponential backoff)
    backoff: float = 2.0
    #: a cron schedule as "minute hour day month day_of_week", e.g. "*/5 * * * *"
    schedule: str | None = None
    description: str = ""


_STATUS = {
    signals.SIGNAL_EXECUTING: "running",
    signals.SIGNAL_COMPLETE: "succeeded",
    signals.SIGNAL_RETRYING: "retrying",
    signals.SIGNAL_ERROR: "failed",
}


def _crontab(schedule: str) -> Callable[..., bool]:
    minute, hour, day, month, day_of_week = schedule.split()
    result: Callable[..., bool] = crontab(minute, hour, day, month, day_of_week)
    return result


class _EmbeddedConsumer(Consumer):  # type: ignore[misc]
    """A consumer running beside a server: the server owns the process's signal handlers."""

    def _set_signal_handlers(self) -> None:
        pass


class Jobs:
    """The job queue of this process: enqueue, run a consumer, read status."""

    def __init__(self, settings: Settings, db: Database, specs: list[JobSpec]) -> None:
        self.context = JobContext(settings=settings, db=db)
        self.huey = self._make_huey(settings)
        self.specs = {spec.name: spec for spec in specs}
        self._tasks: dict[str, Any] = {}
        self._consumer: Consumer | None = None
        for spec in specs:
            self._tasks[spec.name] = self._register(spec)
        self.huey.signal()(self._on_signal)

    @staticmethod
    def _make_huey(settings: Settings) -> Huey:
        if settings.redis_url:
            return RedisHuey(settings.job_queue, url=settings.redis_url, utc=True)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        filename = str(settings.data_dir / "jobs.db")
        return SqliteHuey(settings.job_queue, filename=filename, utc=True)

    def _register(self, spec: JobSpec) -> Any:
        context = self.context

        def run(**kwargs: Any) -> Any:
            return spec.func(context, **kwargs)

        run.__name__ = spec.name
        if spec.schedule:
            return self.huey.periodic_task(_crontab(spec.schedule), name=spec.name)(run)
        return self.huey.task(
            retries=spec.retries,
            retry_delay=spec.retry_delay,
            retry_backoff=spec.backoff,
            name=spec.name,
        )(run)

    def _on_signal(self, signal: str, task: Task, exc: BaseException | None = None) -> None:
        status = _STATUS.get(signal)
        if status is None:
            return
        if status == "failed" and task.retries:
            status = "retrying"  # huey signals the error before it requeues the task
        error = f"{type(exc).__name__}: {exc}" if exc is not None else None
        try:
            with self.context.db.write() as conn:
                store.record_status(conn, task.id, task.name, status, error)
        except Exception:
            log.exception("could not record status of job %s", task.id)

    def enqueue(self, name: str, *, project_id: int | None = None, **kwargs: Any) -> str:
        """Queue job ``name`` with keyword arguments; returns the job id."""
        if name not in self._tasks or self.specs[name].schedule:
            raise NotFound(f"no job named {name!r} can be enqueued")
        try:
            inspect.signature(self.specs[name].func).bind(self.context, **kwargs)
        except TypeError as exc:
            raise BadRequest(f"arguments do not fit job {name!r}: {exc}", param="args") from None
        task = self._tasks[name].s(**kwargs)
        job_id: str = task.id
        with self.context.db.write() as conn:
            store.record_enqueued(conn, job_id, name, kwargs, project_id)
        self.huey.enqueue(task)
        return job_id

    def start_consumer(self, workers: int) -> None:
        """Run consumer threads inside this process (embedded mode and tests)."""
        if self._consumer is not None:
            return
        self._consumer = _EmbeddedConsumer(
            self.huey,
            workers=max(1, workers),
            worker_type="thread",
            periodic=True,
            max_delay=MAX_POLL_DELAY,
        )
        self._consumer.start()

    def stop_consumer(self) -> None:
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None

    def run_worker(self, workers: int) -> None:
        """Block, consuming jobs until interrupted (``pilothouse worker``)."""
        consumer = self.huey.create_consumer(
            workers=max(1, workers), worker_type="thread", max_delay=MAX_POLL_DELAY
        )
        consumer.run()
