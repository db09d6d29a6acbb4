"""Built-in jobs, registered through the ``register_jobs`` hook like any plugin's."""

from __future__ import annotations

from collections.abc import Callable

from pilothouse.hookspecs import hookimpl
from pilothouse.jobs import JobContext, JobSpec


def ping(context: JobContext, fail_times: int = 0, attempt_key: str = "") -> str:
    """Check the job system end to end: touches the database, fails ``fail_times`` first."""
    context.db.ping()
    if fail_times:
        counter = context.settings.data_dir / f"ping-{attempt_key or 'default'}.attempts"
        counter.parent.mkdir(parents=True, exist_ok=True)  # with Redis nothing else creates it
        seen = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(seen + 1))
        if seen < fail_times:
            raise RuntimeError(f"ping failing on purpose (attempt {seen + 1})")
    return "pong"


@hookimpl
def register_jobs(register: Callable[[JobSpec], None]) -> None:
    register(
        JobSpec(
            name="ping",
            func=ping,
            retries=3,
            retry_delay=0.2,
            backoff=2.0,
            description="Checks that workers run jobs and reach the database.",
        )
    )
