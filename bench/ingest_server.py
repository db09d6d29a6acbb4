"""Serve Pilothouse with several worker processes for ``bench/ingest.sh`` (WORKERS=N > 1).

Each uvicorn worker builds its own runtime, hence its own trace writer (one writer per
process); they share the database. Settings come from the PILOTHOUSE_* environment; the
schema and the first administrator are created once, before the workers start.

Usage: python bench/ingest_server.py --port P --workers N
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from pilothouse.app import create_app
from pilothouse.runtime import Runtime
from pilothouse.settings import load_settings


def app() -> ASGIApp:
    """The uvicorn factory: one runtime per worker process."""
    return create_app(Runtime(load_settings()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    runtime = Runtime(load_settings())
    runtime.migrate()
    runtime.bootstrap()
    runtime.db.close()
    uvicorn.run(
        "ingest_server:app",
        factory=True,
        app_dir=str(Path(__file__).parent),
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_level="warning",
        lifespan="on",
    )


if __name__ == "__main__":
    main()
