"""Background jobs: embedded SQLite queue with an in-process consumer, Redis with workers."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pilothouse.errors import BadRequest, NotFound
from pilothouse.jobs import Jobs, JobSpec
from pilothouse.runtime import Runtime
from pilothouse.store import jobs as job_store
from tests.conftest import make_settings


def wait_for(runtime: Runtime, job_id: str, statuses: set[str], timeout: float = 30) -> Any:
    """The job's row once it reaches one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        with runtime.db.read() as conn:
            row = job_store.get_job(conn, job_id)
        if row["status"] in statuses:
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {row['status']} after {timeout}s")
        time.sleep(0.05)


@pytest.fixture
def embedded(tmp_path: Path, database_url: str) -> Iterator[Runtime]:
    """A runtime consuming jobs in-process from its SQLite queue."""
    rt = Runtime(make_settings(tmp_path, database_url, workers_inline=True))
    rt.migrate()
    rt.bootstrap()
    rt.start()
    try:
        yield rt
    finally:
        rt.stop()


def test_embedded_job_succeeds(embedded: Runtime):
    job_id = embedded.jobs.enqueue("ping", project_id=1)
    row = wait_for(embedded, job_id, {"succeeded", "failed"})
    assert row["status"] == "succeeded" and row["attempts"] == 1 and row["error"] is None
    assert row["project_id"] == 1 and row["started_at"] <= row["finished_at"]
    assert embedded.jobs.huey.storage.filename == str(embedded.settings.data_dir / "jobs.db")


def test_failing_job_is_retried_with_backoff(embedded: Runtime):
    job_id = embedded.jobs.enqueue("ping", fail_times=2, attempt_key=secrets.token_hex(4))
    row = wait_for(embedded, job_id, {"succeeded", "failed"})
    assert row["status"] == "succeeded"
    assert row["attempts"] == 3
    task = embedded.jobs._tasks["ping"].s()
    assert (task.retries, task.retry_delay, task.retry_backoff) == (3, 0.2, 2.0)


def test_job_fails_once_retries_are_exhausted(embedded: Runtime):
    job_id = embedded.jobs.enqueue("ping", fail_times=10, attempt_key=secrets.token_hex(4))
    row = wait_for(embedded, job_id, {"succeeded", "failed"})
    assert row["status"] == "failed"
    assert row["attempts"] == 4  # the first run and three retries
    assert row["error"] == "RuntimeError: ping failing on purpose (attempt 4)"


def test_enqueue_checks_name_and_arguments(runtime: Runtime):
    with pytest.raises(NotFound):
        runtime.jobs.enqueue("no-such-job")
    with pytest.raises(BadRequest) as caught:
        runtime.jobs.enqueue("ping", colour="red")
    assert caught.value.param == "args"


def test_periodic_spec_registers_on_its_schedule(runtime: Runtime):
    def tick(context: Any) -> None:
        return None

    specs = [JobSpec(name="tick", func=tick, schedule="*/5 * * * *")]
    jobs = Jobs(runtime.settings, runtime.db, specs)
    due = jobs.huey.read_periodic(datetime(2030, 1, 1, 12, 10, tzinfo=UTC))
    assert [t.name for t in due] == ["tick"]
    assert jobs.huey.read_periodic(datetime(2030, 1, 1, 12, 11, tzinfo=UTC)) == []
    with pytest.raises(NotFound):
        jobs.enqueue("tick")  # periodic jobs run on their schedule only

    jobs.huey.execute(due[0])  # what the consumer's scheduler does when it is due
    with runtime.db.read() as conn:
        runs = job_store.list_jobs(conn, name="tick")
    assert [(r["status"], r["attempts"]) for r in runs] == [("succeeded", 1)]


@pytest.mark.redis
def test_redis_queue_is_consumed_by_a_worker_process(
    tmp_path: Path, database_url: str, redis_url: str
):
    queue = f"phtest{secrets.token_hex(4)}"
    settings = make_settings(tmp_path, database_url, redis_url=redis_url, job_queue=queue)
    runtime = Runtime(settings)
    runtime.migrate()
    env = {
        "PATH": os.environ["PATH"],
        "PILOTHOUSE_DATABASE_URL": database_url,
        "PILOTHOUSE_DATA_DIR": str(settings.data_dir),
        "PILOTHOUSE_REDIS_URL": redis_url,
        "PILOTHOUSE_JOB_QUEUE": queue,
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "pilothouse", "worker", "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert runtime.jobs.huey.storage.name == queue
        ok = runtime.jobs.enqueue("ping")
        retried = runtime.jobs.enqueue("ping", fail_times=1, attempt_key="redis")
        assert wait_for(runtime, ok, {"succeeded", "failed"})["status"] == "succeeded"
        row = wait_for(runtime, retried, {"succeeded", "failed"})
        assert (row["status"], row["attempts"]) == ("succeeded", 2), row["error"]
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            output, _ = worker.communicate(timeout=30)
        finally:
            worker.kill()
            runtime.jobs.huey.flush()
            runtime.db.close()
    assert worker.returncode == 0, output
    assert "Worker consuming jobs from Redis" in output
