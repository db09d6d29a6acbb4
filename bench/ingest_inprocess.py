"""Trace ingestion in one process, without HTTP: CPU and write-lock time per span.

The wall-clock figures of ``bench/ingest.sh`` move with whatever else the machine runs; these
move much less. OTLP bodies made by ``../shared/bench/otlp_load.py`` (4-span GenAI traces, 512
spans each) are decoded, normalized and stored through :class:`SpanStore` in batches, by two
stores on two connections taking turns, as two server processes do (each transaction finds the
pages the other one changed). After ``--fill`` spans, ``--spans`` more are measured:

- CPU per span from the protobuf body to committed and checkpointed (this thread's CPU time);
- the write lock held per span, wall and CPU (the serialized part with several processes);
- the checkpoints run after the commits, wall per span.

Usage: python bench/ingest_inprocess.py [--fill 50000] [--spans 40960] [--batch 1024]
Compare two versions by running it alternately with ``PYTHONPATH=<a git archive>/src``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pilothouse.store import Database, migrate
from pilothouse.tracing import otlp, semconv
from pilothouse.tracing.batch import SpanStore

SHARED = Path(__file__).resolve().parents[2] / "shared" / "bench"


def load_generator() -> dict[str, Any]:
    """``otlp_load.py``'s functions (the script runs its load when imported)."""
    source = (SHARED / "otlp_load.py").read_text().split("async def main")[0]
    namespace: dict[str, Any] = {}
    exec(compile(source, "otlp_load.py", "exec"), namespace)
    return namespace


class LockTimer:
    """Wraps a store's write lock to add up the time it is held."""

    def __init__(self, store: SpanStore) -> None:
        self.wall = self.cpu = 0.0
        self._hold = store._lock.hold
        store._lock.hold = self.hold  # type: ignore[method-assign]

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        with self._hold():
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                yield
            finally:
                self.wall += time.perf_counter() - wall
                self.cpu += time.thread_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fill", type=int, default=50_000)
    parser.add_argument("--spans", type=int, default=40_960)
    parser.add_argument("--batch", type=int, default=1024)
    args = parser.parse_args()
    random.seed(1)
    generator = load_generator()
    with tempfile.TemporaryDirectory() as folder:
        measure(args, generator, f"sqlite:///{folder}/pilothouse.db")


def measure(args: argparse.Namespace, generator: dict[str, Any], url: str) -> None:
    """Fill, then measure, on a new database at ``url``."""
    databases = [Database(url), Database(url)]
    migrate.upgrade(databases[0])
    stores = [SpanStore(db) for db in databases]
    timers = [LockTimer(store) for store in stores]

    def bodies(n: int) -> list[bytes]:
        out: list[bytes] = []
        while len(out) * 512 < n:
            out.append(generator["make_request"](512, "bench")[0])
        return out

    def run(requests: list[bytes]) -> tuple[int, float, float]:
        cpu = time.thread_time()
        spans = [s for body in requests for s in otlp.decode(body, otlp.PROTOBUF, 1).spans]
        checkpoints = 0.0
        for i, start in enumerate(range(0, len(spans), args.batch)):
            batch, store = spans[start : start + args.batch], stores[i % 2]
            for span in batch:
                semconv.normalize(span)
            store.write(batch)
            if hasattr(store, "checkpoint_if_due"):  # older versions checkpoint in write
                started = time.perf_counter()
                store.checkpoint_if_due()
                checkpoints += time.perf_counter() - started
        return len(spans), time.thread_time() - cpu, checkpoints

    run(bodies(args.fill))
    for timer in timers:
        timer.wall = timer.cpu = 0.0
    n, cpu, checkpoints = run(bodies(args.spans))
    wall = sum(t.wall for t in timers)
    held_cpu = sum(t.cpu for t in timers)
    print(
        f"{n} spans in batches of {args.batch}: CPU {1e6 * cpu / n:.1f} us/span; write lock held "
        f"{1e6 * wall / n:.1f} us/span (CPU {1e6 * held_cpu / n:.1f}); checkpoints after "
        f"the commits {1e6 * checkpoints / n:.1f} us/span"
    )
    for store, db in zip(stores, databases, strict=True):
        store.close()
        db.close()


if __name__ == "__main__":
    main()
