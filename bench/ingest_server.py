"""Serve Pilothouse with several worker processes for ``bench/ingest.sh`` (WORKERS=N > 1).

Each process builds its own runtime, hence its own trace writer (one writer per process); they
share the database, as replicas behind a load balancer would. Settings come from the
PILOTHOUSE_* environment; the schema and the first administrator are created once, before the
processes start.

Each process listens on its own ``SO_REUSEPORT`` socket, so the kernel spreads the load
generator's connections over the processes. With one shared socket (uvicorn's ``workers``) the
process whose event loop wakes first accepts every pending connection (asyncio accepts up to
its backlog at once): the 8 keep-alive connections of a run often all went to one process,
which measured one process instead of N.

Usage: python bench/ingest_server.py --port P --workers N
"""

from __future__ import annotations

import argparse
import multiprocessing
import signal
import socket
import sys
from types import FrameType

import uvicorn

from pilothouse.app import create_app
from pilothouse.runtime import Runtime
from pilothouse.settings import load_settings


def serve(port: int) -> None:
    """One server process: its own runtime, on its own socket of the shared port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    app = create_app(Runtime(load_settings()))
    config = uvicorn.Config(
        app,
        http=app.protocol(),  # as `pilothouse serve` does
        access_log=False,
        log_level="warning",
        lifespan="on",
    )
    uvicorn.Server(config).run(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    runtime = Runtime(load_settings())
    runtime.migrate()
    runtime.bootstrap()
    runtime.db.close()
    spawn = multiprocessing.get_context("spawn")
    processes = [spawn.Process(target=serve, args=(args.port,)) for _ in range(args.workers)]
    for process in processes:
        process.start()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        for process in processes:
            process.terminate()  # SIGTERM: uvicorn shuts down, the writer flushes

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for process in processes:
        process.join()
    sys.exit(max(abs(p.exitcode or 0) for p in processes) and 1)


if __name__ == "__main__":
    main()
