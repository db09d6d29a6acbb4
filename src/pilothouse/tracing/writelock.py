"""One trace writer at a time across the processes that share a SQLite database.

SQLite has one write lock per database, and a writer that finds it taken polls with growing
sleeps (1, 2, 5, 10... ms, SQLite's busy handler): with several server processes ingesting
at once the lock then sits idle between transactions. The writers of these processes queue
on an ``flock`` of a file beside the database instead, which wakes the next one as soon as
the lock is released. PostgreSQL needs none of this: :meth:`WriteLock.hold` does nothing.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

from pilothouse.store import Database

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: SQLite's busy handler alone
    fcntl = None  # type: ignore[assignment]


class WriteLock:
    """An exclusive lock on ``<database file>.write-lock`` for SQLite files, else a no-op."""

    def __init__(self, db: Database) -> None:
        database = db.engine.url.database if db.dialect == "sqlite" else None
        self.path = f"{database}.write-lock" if database and database != ":memory:" else None
        self._fd: int | None = None
        self._open = threading.Lock()

    def _descriptor(self) -> int | None:
        if self.path is None or fcntl is None:
            return None
        with self._open:
            if self._fd is None:
                try:
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
                except OSError:
                    self.path = None  # read-only directory: the busy handler alone
                    return None
            return self._fd

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lock (waiting for other processes' writers) for the block."""
        fd = self._descriptor()
        if fd is None:
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)  # releases the GIL while it waits
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._open:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


__all__ = ["WriteLock"]
