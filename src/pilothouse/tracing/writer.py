"""The one span writer of a process: group commit from many producers, spill when the DB is down.

Producers never touch the database. They hand spans to :class:`TraceWriter`:

- :meth:`TraceWriter.write` (OTLP ingestion) waits until the transaction holding its spans has
  committed, so a client is acknowledged only for spans that are stored. When more than
  ``tracing_queue_spans`` spans wait, it raises :class:`~pilothouse.errors.Unavailable` with a
  ``Retry-After`` and OTLP exporters retry later.
- :meth:`TraceWriter.submit` (the gateway) returns at once. Its buffer is bounded by
  ``tracing_buffer_spans``; when it is full, or when the database fails, the oldest spans are
  appended to ``<data_dir>/spill/*.jsonl`` and replayed once the database answers again. With
  ``tracing_writer_process`` on, submitted spans go to a child process that writes them
  (:mod:`pilothouse.tracing.process`), off the server's event loop and GIL.

One thread takes everything waiting (up to ``tracing_batch_spans``) and writes it in a single
transaction: while it commits, the next group gathers, which is what makes SQLite fast here.
Nobody waits on submitted spans, so when only those are queued the thread lingers up to
:data:`LINGER` seconds to gather a larger batch: a transaction costs far more than a row, and
committing the gateway's spans a few at a time cost more CPU than the calls they describe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    SQLAlchemyError,
    StatementError,
)

from pilothouse.errors import BadRequest, PilothouseError, Unavailable
from pilothouse.settings import Settings
from pilothouse.store import Database
from pilothouse.tracing import semconv
from pilothouse.tracing.batch import SpanStore, span_row
from pilothouse.tracing.model import Span
from pilothouse.tracing.process import WriterProcess, serialize, write_spill

log = logging.getLogger(__name__)

#: Seconds between attempts while the database is failing.
RETRY_DELAY = 1.0
#: Seconds between looks for spilled spans while idle.
REPLAY_INTERVAL = 2.0
#: Seconds the writer waits for more submitted spans before committing a small batch: a
#: transaction has a cost of its own (~4 ms here, whatever its size), so the gateway's spans
#: commit a few times a second; they show up at most a quarter of a second later.
LINGER = 0.25

Done = Callable[[BaseException | None], None]


def _async_done(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> Done:
    def resolve(exc: BaseException | None) -> None:
        if future.done():
            return
        if exc is None:
            future.set_result(None)
        else:
            future.set_exception(exc)

    def done(exc: BaseException | None) -> None:
        # A closed loop means the caller is gone: nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(resolve, exc)

    return done


class TraceWriter:
    """Writes spans in group-committed batches on a background thread."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.queue_limit = settings.tracing_queue_spans
        self.batch_limit = settings.tracing_batch_spans
        self.buffer_limit = settings.tracing_buffer_spans
        self.spill_dir = Path(settings.data_dir) / "spill"
        self._cond = threading.Condition()
        self._acked: deque[tuple[list[Span], Done]] = deque()
        self._acked_spans = 0
        self._buffer: deque[Span] = deque()
        self._busy = 0  # spans taken by the writer thread, not yet committed
        self._busy_since: int | None = None  # end time (ns) of the first submitted one of them
        self._thread: threading.Thread | None = None
        self._closed = False
        self._hurry = False  # a flush is waiting: commit submitted spans without lingering
        self._replay_lock = threading.Lock()  # one replayer at a time (thread or caller)
        self._spans = SpanStore(db)
        self._rate = 10_000.0  # spans/s recently committed, for Retry-After
        #: where submitted spans go instead of the buffer, when ``tracing_writer_process`` is on
        self.process = WriterProcess(settings) if settings.tracing_writer_process else None
        #: counters, for tests, logs and the health route
        self.stats = dict.fromkeys(
            ("batches", "committed", "duplicates", "spilled", "replayed", "failed"), 0
        )

    # --- producers ----------------------------------------------------------------------------

    async def write(self, spans: Sequence[Span]) -> None:
        """Store ``spans``; returns once their transaction committed."""
        if not spans:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._enqueue(list(spans), _async_done(loop, future))
        await future

    def write_sync(self, spans: Sequence[Span], timeout: float | None = None) -> None:
        """:meth:`write` for threads without an event loop (the gRPC server, jobs)."""
        if not spans:
            return
        finished = threading.Event()
        outcome: list[BaseException | None] = []

        def done(exc: BaseException | None) -> None:
            outcome.append(exc)
            finished.set()

        self._enqueue(list(spans), done)
        if not finished.wait(timeout):
            raise Unavailable("the trace writer did not answer in time", retry_after=5)
        if outcome[0] is not None:
            raise outcome[0]

    def _enqueue(self, spans: list[Span], done: Done) -> None:
        with self._cond:
            if self._closed:
                raise Unavailable("the server is shutting down", retry_after=5)
            waiting = self._acked_spans + self._busy
            if waiting and waiting + len(spans) > self.queue_limit:
                retry = max(1.0, waiting / max(self._rate, 1.0))
                raise Unavailable(
                    f"{waiting} spans are waiting to be written; retry later",
                    code="ingest_overloaded",
                    retry_after=retry,
                )
            self._acked.append((spans, done))
            self._acked_spans += len(spans)
            self._cond.notify()
        self._ensure_thread()

    def submit(self, spans: Sequence[Span]) -> None:
        """Queue ``spans`` without waiting; beyond the buffer the oldest spill to disk."""
        if self.process is not None:
            self.process.submit(spans)
            return
        overflow: list[Span] = []
        with self._cond:
            was_empty = not self._buffer
            self._buffer.extend(spans)
            extra = len(self._buffer) - self.buffer_limit
            if extra > 0 or self._closed:
                # Spill a tenth more than needed so a full buffer does not spill every call.
                n = len(self._buffer) if self._closed else extra + self.buffer_limit // 10
                overflow = [self._buffer.popleft() for _ in range(min(n, len(self._buffer)))]
            if was_empty or len(self._buffer) >= self.batch_limit:
                self._cond.notify()  # otherwise the writer is lingering or busy: no wake-up
        if overflow:
            self.spill(overflow)
        if not self._closed:
            self._ensure_thread()

    # --- lifecycle ----------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._cond:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="pilothouse-trace-writer", daemon=True
                )
                self._thread.start()

    def start(self) -> None:
        """Start the writer thread now (it replays spilled spans first)."""
        self._ensure_thread()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is committed or spilled."""
        deadline = time.monotonic() + timeout
        if self.process is not None and not self.process.flush(timeout):
            return False
        with self._cond:
            self._hurry = True
            self._cond.notify_all()
            try:
                while self._acked or self._buffer or self._busy:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._thread is None:
                        return False
                    self._cond.wait(min(left, 0.1))
            finally:
                self._hurry = False
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Flush, stop the thread; whatever could not be written is spilled."""
        if self.process is not None:
            self.process.close(timeout)
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._cond:
            leftover = list(self._buffer)
            self._buffer.clear()
            acked = list(self._acked)
            self._acked.clear()
            self._acked_spans = 0
        if leftover:
            self.spill(leftover)
        for _spans, done in acked:
            done(Unavailable("the server is shutting down", retry_after=5))
        self._spans.close()

    @property
    def pending(self) -> int:
        """Spans accepted but not yet committed (or, with a writer process, not yet sent)."""
        sent_off = self.process.pending if self.process is not None else 0
        with self._cond:
            return self._acked_spans + len(self._buffer) + self._busy + sent_off

    def waiting_since(self) -> int | None:
        """End time (ns) of the oldest submitted span not committed yet (None: none waits)."""
        with self._cond:
            if self._busy_since is not None:
                return self._busy_since  # submitted before those still buffered
            return self._buffer[0].end_time_ns if self._buffer else None

    # --- the writer thread --------------------------------------------------------------------

    def _take(self) -> tuple[list[tuple[list[Span], Done]], list[Span]]:
        groups: list[tuple[list[Span], Done]] = []
        taken = 0
        while self._acked and (not groups or taken + len(self._acked[0][0]) <= self.batch_limit):
            spans, done = self._acked.popleft()
            groups.append((spans, done))
            taken += len(spans)
        self._acked_spans -= taken
        loose: list[Span] = []
        room = max(self.batch_limit - taken, 0) if groups else self.batch_limit
        while self._buffer and len(loose) < room:
            loose.append(self._buffer.popleft())
        self._busy = taken + len(loose)
        self._busy_since = loose[0].end_time_ns if loose else None
        return groups, loose

    def _linger(self) -> None:
        """With only submitted spans queued, wait (lock held) until more gather or time is up."""
        deadline = time.monotonic() + LINGER
        while (
            not self._acked
            and len(self._buffer) < self.batch_limit
            and not self._closed
            and not self._hurry
        ):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

    def _run(self) -> None:
        self.replay()
        while True:
            with self._cond:
                if not self._acked and not self._buffer and not self._closed:
                    self._cond.wait(REPLAY_INTERVAL)
                if not self._acked and not self._buffer:
                    if self._closed:
                        return  # closed and drained
                    idle = True
                else:
                    idle = False
                    self._linger()
                    groups, loose = self._take()
            if idle:
                self.replay()  # spilled spans come back once the database answers
                continue
            try:
                self._write_groups(groups, loose)
            finally:
                with self._cond:
                    self._busy = 0
                    self._busy_since = None
                    self._cond.notify_all()
            self._checkpoint()  # after the acknowledgements: see SpanStore.checkpoint_if_due
            with self._cond:
                idle = not self._acked and not self._buffer
            if idle:
                self.replay()

    def _write_groups(self, groups: list[tuple[list[Span], Done]], loose: list[Span]) -> None:
        everything = [s for spans, _ in groups for s in spans] + loose
        try:
            self.commit(everything)
        except Exception as exc:  # noqa: BLE001 - the writer thread must outlive any bad span
            if len(groups) > 1 and _is_bad_data(exc):
                # One producer's bad data must not fail the others: write each on its own.
                for spans, done in groups:
                    self._write_groups([(spans, done)], [])
                if loose:
                    self._write_groups([], loose)
                return
            self.stats["failed"] += 1
            log.warning("could not write %d spans: %s", len(everything), exc)
            failure = _as_client_error(exc)
            for _spans, done in groups:
                done(failure)
            if loose:
                self.spill(loose)
            if isinstance(failure, Unavailable):
                time.sleep(RETRY_DELAY)
            return
        for _spans, done in groups:
            done(None)

    def commit(self, spans: Sequence[Span]) -> int:
        """Normalize and store ``spans`` in one transaction; returns how many were new."""
        if not spans:
            return 0
        started = time.perf_counter()
        for span in spans:
            semconv.normalize(span)
        new = self._spans.write(spans)
        elapsed = max(time.perf_counter() - started, 1e-6)
        self._rate = 0.5 * self._rate + 0.5 * (len(spans) / elapsed)
        self.stats["batches"] += 1
        self.stats["committed"] += new
        self.stats["duplicates"] += len(spans) - new
        return new

    # --- spill and replay ---------------------------------------------------------------------

    def spill(self, spans: Sequence[Span]) -> Path:
        """Append ``spans`` to a new JSONL file under ``spill_dir`` (replayed later)."""
        path = write_spill(self.spill_dir, [serialize(s) for s in spans])
        self.stats["spilled"] += len(spans)
        return path

    def spilled_files(self) -> list[Path]:
        if not self.spill_dir.is_dir():
            return []
        return sorted(self.spill_dir.glob("*.jsonl"))

    def replay(self) -> int:
        """Write spilled spans back (oldest file first); returns how many spans were replayed."""
        with self._replay_lock:
            return self._replay()

    def _replay(self) -> int:
        replayed = 0
        for path in self.spilled_files():
            with self._cond:
                if self._closed or self._acked:
                    return replayed  # live traffic first
            try:
                spans = [Span(**orjson.loads(line)) for line in path.read_bytes().splitlines()]
            except FileNotFoundError:
                continue  # another process replayed it first
            except (OSError, ValueError, TypeError) as exc:
                log.error("unreadable spill file %s (%s); renamed to .bad", path, exc)
                with contextlib.suppress(FileNotFoundError):
                    path.rename(path.with_suffix(".bad"))
                continue
            try:
                self.commit(spans)
            except Exception as exc:  # noqa: BLE001 - a bad file must not stop the replay
                if not _is_bad_data(exc):
                    log.warning("replay of %s failed, will retry: %s", path, exc)
                    return replayed
                log.error("spill file %s cannot be stored (%s); renamed to .bad", path, exc)
                with contextlib.suppress(FileNotFoundError):
                    path.rename(path.with_suffix(".bad"))
                continue
            path.unlink(missing_ok=True)
            self.stats["replayed"] += len(spans)
            replayed += len(spans)
            self._checkpoint()
        return replayed

    def _checkpoint(self) -> None:
        try:
            self._spans.checkpoint_if_due()
        except SQLAlchemyError as exc:  # committed all the same; the next one copies the WAL
            log.warning("WAL checkpoint failed: %s", exc)


def _is_bad_data(exc: BaseException) -> bool:
    """True when the spans themselves cannot be stored (as opposed to the database failing)."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    if isinstance(exc, DBAPIError):
        return False  # the database failed (down, locked, missing table...): retry later
    if isinstance(exc, StatementError):  # a value could not be bound, e.g. a bad type
        return exc.orig is not None and _is_bad_data(exc.orig)
    return not isinstance(exc, SQLAlchemyError | OSError)


def _as_client_error(exc: BaseException) -> PilothouseError:
    if _is_bad_data(exc):
        return BadRequest(f"spans could not be stored: {str(exc).splitlines()[0][:300]}")
    return Unavailable("the trace store is unavailable; retry later", retry_after=RETRY_DELAY)


__all__ = ["TraceWriter", "span_row"]
