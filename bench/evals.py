"""Throughput of an experiment: 1,000 items x 3 deterministic evaluators on the mock provider.

Run: python bench/evals.py [--items 1000] [--concurrency 16] [--rounds 3]. Each round makes a
fresh SQLite store in a temporary directory, pushes the dataset, then times the experiment
(``experiments.run_sync``): every item goes through the gateway in-process (``mock/echo``),
gets three scores (equals, icontains, similarity), a trace and a stored result. Prints the
wall time of each round and items per second; the best round is the figure to record.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pilothouse.evals import experiments
from pilothouse.evals.api import datasets_of
from pilothouse.runtime import Runtime
from pilothouse.settings import load_settings


def one_round(items: int, concurrency: int) -> float:
    with tempfile.TemporaryDirectory(prefix="pilothouse-bench-") as tmp:
        runtime = Runtime(load_settings({"data_dir": Path(tmp)}, environ={}))
        runtime.migrate()
        runtime.bootstrap()
        rows = [
            {"key": f"q{i}", "input": f"question number {i}", "expected": f"question number {i}"}
            for i in range(items)
        ]
        datasets_of(runtime).create(1, "bench", items=rows)
        row = experiments.create(
            runtime,
            1,
            dataset="bench",
            target={"type": "model", "model": "mock/echo"},
            evaluators=["equals", {"type": "icontains", "value": "question"}, "similarity"],
            config={"concurrency": concurrency},
        )
        started = time.perf_counter()
        summary = experiments.run_sync(runtime, row["id"])
        elapsed = time.perf_counter() - started
        runtime.traces.close()
        runtime.db.close()
        assert summary["results"] == items, summary
        assert summary["evaluators"]["equals"]["pass_rate"] == 1.0, summary
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times = []
    for n in range(args.rounds):
        elapsed = one_round(args.items, args.concurrency)
        times.append(elapsed)
        print(f"round {n + 1}: {elapsed:.2f} s, {args.items / elapsed:.0f} items/s")
    best = min(times)
    print(f"best: {best:.2f} s for {args.items} items x 3 evaluators ({args.items / best:.0f}/s)")


if __name__ == "__main__":
    main()
