"""Submitted spans written by a child process, so the server's event loop keeps its core.

The gateway submits one span per call. Committing them (normalization, trace and rollup rows,
SQL) costs about as much CPU as proxying the call, and in the server's process that work
competes for the one GIL the event loop needs. With ``tracing_writer_process`` on,
:meth:`TraceWriter.submit <pilothouse.tracing.writer.TraceWriter.submit>` hands spans to
:class:`WriterProcess` instead: the caller only serializes each span (orjson, in C), a feeder
thread sends them in batches through a pipe, and a child process (``python -m
pilothouse.tracing.process``) runs an ordinary :class:`TraceWriter` on them, with its buffer,
spill files and replay. Acknowledged writes (OTLP ingestion) stay in the server's process.
The child runs at a lower priority (:mod:`pilothouse.tracing.priority`): on Linux only on idle
cores, else at ``nice`` :data:`NICENESS`, so on busy cores the request path comes first and the
spans wait; once they have waited :data:`BEHIND_SECONDS`, or when the server asks for a flush,
the child competes (at ``nice`` :data:`NICENESS`) until it has caught up.

Nothing is dropped: beyond ``tracing_buffer_spans`` waiting spans (a stuck child) the oldest
are appended to ``<data_dir>/spill/*.jsonl``, the same files the writer replays; a batch the
child could not take (it died) is spilled too, and the next batch starts a new child.

Frames on the child's stdin: one kind byte and a 4-byte length, then the payload. ``S``: spans,
one JSON value per line: a span object, or the JSON array of a gateway call's facts
(:func:`pilothouse.gateway.spans.facts`), from which the child builds the span, so the server
does not; ``F``: flush, answered with one line on stdout (``1`` when all spans were committed or
spilled, ``0`` on timeout). Spill files hold span objects only.
"""

from __future__ import annotations

import array
import contextlib
import dataclasses
import logging
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from pilothouse.settings import Settings, load_settings
from pilothouse.tracing import priority
from pilothouse.tracing.model import Span

if TYPE_CHECKING:
    from pilothouse.tracing.writer import TraceWriter

log = logging.getLogger(__name__)

#: Environment variable carrying the child's settings (JSON).
SETTINGS_ENV = "PILOTHOUSE_WRITER_PROCESS_SETTINGS"
#: Seconds the feeder waits to gather a batch before sending.
LINGER = 0.02
FRAME = struct.Struct("!cI")
#: How much the child lowers its scheduling priority (``nice``): the request path comes first.
NICENESS = 10
#: Seconds the oldest span may wait in the child before it competes for busy cores.
BEHIND_SECONDS = 1.0
#: Seconds between two looks at how long the oldest span has waited.
WATCH_SECONDS = 0.25
SPANS, FLUSH = b"S", b"F"


def write_spill(spill_dir: Path, lines: Sequence[bytes]) -> Path:
    """Append serialized spans (one JSON object each) to a new spill file, replayed later."""
    spill_dir.mkdir(parents=True, exist_ok=True)
    path = spill_dir / f"{time.time_ns()}-{os.getpid()}-{threading.get_ident()}.jsonl"
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    tmp.replace(path)  # replay never sees half a file
    log.warning("spilled %d spans to %s", len(lines), path)
    return path


def serialize(span: Span) -> bytes:
    """One span as the JSON the child and the spill files read (orjson writes dataclasses)."""
    return orjson.dumps(span, default=str)


def parse(line: bytes, max_chars: int) -> Span:
    """The span of one line sent to the child: a span object or a gateway call's facts."""
    value: Any = orjson.loads(line)
    if type(value) is list:
        from pilothouse.gateway.spans import span_of  # the child builds gateway spans

        # No string in a line is longer than the line: a short one needs no cutting.
        return span_of(value, max_chars if len(line) > max_chars else 0)
    return Span(**value)


class WriterProcess:
    """The server's side: buffers serialized spans and feeds them to the child."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.buffer_limit = settings.tracing_buffer_spans
        self.spill_dir = Path(settings.data_dir) / "spill"
        self.max_chars = settings.gateway_content_max_chars
        self._cond = threading.Condition()
        # Producers append without the lock (deque appends are atomic); the feeder pops.
        self._pending: deque[bytes] = deque()
        self._idle = False  # the feeder waits for a first span: the next producer wakes it
        self._busy = 0  # spans taken by the feeder, not yet handed to the child
        self._flush_asked = 0
        self._flush_done = 0
        self._flush_ok = True
        self._closed = False
        self._thread: threading.Thread | None = None
        self._child: subprocess.Popen[bytes] | None = None
        #: counters, for tests and logs
        self.stats = dict.fromkeys(("sent", "spilled", "children"), 0)

    def submit(self, spans: Sequence[Span]) -> None:
        """Queue ``spans`` without waiting; beyond the buffer the oldest spill to disk."""
        for span in spans:
            self.submit_line(serialize(span))

    def submit_line(self, line: bytes) -> None:
        """Queue one serialized span, or a gateway call's facts, without waiting or locking."""
        pending = self._pending
        pending.append(line)
        if self._idle or self._closed or self._thread is None or len(pending) > self.buffer_limit:
            self._wake()

    def _take(self, n: int) -> list[bytes]:
        """The ``n`` oldest queued lines, in order (under ``_cond``: the feeder's side)."""
        pending = self._pending
        return [pending.popleft() for _ in range(n)]

    def _wake(self) -> None:
        """The rare path of a submission: wake or start the feeder, spill an overflow."""
        overflow: list[bytes] = []
        with self._cond:
            pending = self._pending
            if self._closed:
                overflow = self._take(len(pending))
            else:
                extra = len(pending) - self.buffer_limit
                if extra > 0:
                    # Spill a tenth more than needed so a full buffer does not spill every call.
                    n = min(len(pending), extra + self.buffer_limit // 10)
                    overflow = self._take(n)
                self._cond.notify()
        if overflow:
            self._spill(overflow)
        if self._thread is None and not self._closed:
            self._start_thread()

    @property
    def pending(self) -> int:
        """Spans not yet handed to the child."""
        with self._cond:
            return len(self._pending) + self._busy

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until the child has committed (or spilled) everything submitted so far."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._thread is None or self._closed:
                return not self._pending
            self._flush_asked += 1
            ticket = self._flush_asked
            self._cond.notify_all()
            while self._flush_done < ticket:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return self._flush_ok

    def close(self, timeout: float = 30.0) -> None:
        """Flush, then stop the feeder and the child (which commits or spills the rest)."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._cond:
            leftover = self._take(len(self._pending))
        if leftover:
            self._spill(leftover)
        self._stop_child(timeout)

    # --- the feeder thread --------------------------------------------------------------

    def _start_thread(self) -> None:
        with self._cond:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="pilothouse-span-feeder", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending and not self._closed and self._wanted_flush() is None:
                    # Set before looking again: a producer sees it or we see its span.
                    self._idle = True
                    while not self._pending and not self._closed and self._wanted_flush() is None:
                        self._cond.wait()
                    self._idle = False
                if self._wanted_flush() is None and not self._closed:
                    self._cond.wait(LINGER)  # gather a batch; flush and close cut it short
                batch = self._take(len(self._pending))
                self._busy = len(batch)
                ticket = self._wanted_flush()
                closing = self._closed
            try:
                if batch:
                    self._send(batch)
                ok = self._child_flush() if ticket is not None else True
            finally:
                with self._cond:
                    self._busy = 0
                    if ticket is not None:
                        self._flush_ok = ok
                        self._flush_done = ticket
                    self._cond.notify_all()
            if closing and not batch:
                return

    def _wanted_flush(self) -> int | None:
        return self._flush_asked if self._flush_asked > self._flush_done else None

    def _send(self, batch: list[bytes]) -> None:
        payload = b"\n".join(batch)
        try:
            stdin = self._stdin()
            stdin.write(FRAME.pack(SPANS, len(payload)) + payload)
            stdin.flush()
        except OSError as exc:
            log.warning("the trace writer process is gone (%s); spilling %d spans", exc, len(batch))
            self._stop_child(1.0)
            self._spill(batch)
            return
        self.stats["sent"] += len(batch)

    def _child_flush(self) -> bool:
        if self._child is None:
            return True  # nothing was sent to a child that is not running
        try:
            stdin, stdout = self._stdin(), self._child.stdout
            assert stdout is not None
            stdin.write(FRAME.pack(FLUSH, 0))
            stdin.flush()
            return stdout.readline().strip() == b"1"
        except OSError:
            self._stop_child(1.0)
            return False

    def _spill(self, lines: list[bytes]) -> None:
        # Spill files hold spans, which the writer replays: build those of gateway calls.
        lines = [serialize(parse(x, self.max_chars)) if x[:1] == b"[" else x for x in lines]
        write_spill(self.spill_dir, lines)
        self.stats["spilled"] += len(lines)

    # --- the child ----------------------------------------------------------------------

    def _stdin(self) -> IO[bytes]:
        child = self._child
        if child is not None and child.poll() is not None:
            self._stop_child(0)  # it died: close its pipes
            child = None
        if child is None:
            child = self._child = self._spawn()
        assert child.stdin is not None
        return child.stdin

    def _spawn(self) -> subprocess.Popen[bytes]:
        values = dataclasses.asdict(self.settings)
        values["tracing_writer_process"] = False  # the child writes itself
        env = {**os.environ, SETTINGS_ENV: orjson.dumps(values, default=str).decode()}
        self.stats["children"] += 1
        return subprocess.Popen(
            [sys.executable, "-m", "pilothouse.tracing.process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )

    def _stop_child(self, timeout: float) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        with contextlib.suppress(OSError):
            assert child.stdin is not None
            child.stdin.close()  # end of input: the child commits what it holds and exits
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("the trace writer process did not stop in %gs; killed", timeout)
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


class Watch(threading.Thread):
    """Tells the child's priority whether it is behind, every :data:`WATCH_SECONDS`: when the
    oldest span it holds waited over :data:`BEHIND_SECONDS`, when spans waited in the pipe a
    whole period without the child reading any (those behind them wait in the server, where
    the child cannot see their age), or while someone waits for it.

    It runs in the normal class, so it looks even while the other threads wait for idle cores.
    """

    def __init__(self, writer: TraceWriter, pipe: int) -> None:
        super().__init__(name="pilothouse-writer-watch", daemon=True)
        self.writer = writer
        self.pipe = pipe
        #: frames read from the pipe so far (the reading thread counts them)
        self.frames = 0
        #: set while someone waits for the writer (a flush, the end): behind, whatever the age
        self.hurry = threading.Event()
        self._stopped = threading.Event()
        self._frames_seen = 0  # frames read at the previous look
        self._waiting = False  # whether bytes waited in the pipe then

    def run(self) -> None:
        with priority.urgent():
            while True:
                self.check()
                if self._stopped.wait(WATCH_SECONDS):
                    return

    def check(self) -> None:
        priority.set_behind(self.behind())

    def behind(self) -> bool:
        """Whether the child is behind now (each call is one look: the pipe's rule compares it
        with the previous one)."""
        oldest = self.writer.waiting_since()
        waited = 0.0 if oldest is None else (time.time_ns() - oldest) / 1e9
        waiting = _unread(self.pipe) > 0
        stalled = waiting and self._waiting and self.frames == self._frames_seen
        self._waiting, self._frames_seen = waiting, self.frames
        return self.hurry.is_set() or stalled or waited > BEHIND_SECONDS

    def stop(self) -> None:
        self._stopped.set()
        self.join()
        self.check()


def _unread(pipe: int) -> int:
    """Bytes waiting in a pipe."""
    import fcntl  # POSIX, as the child is: imported where the server never goes
    import termios

    count = array.array("i", [0])
    try:
        fcntl.ioctl(pipe, termios.FIONREAD, count)
    except OSError:  # closed: nothing more will come
        return 0
    return count[0]


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    data = stream.read(size) if size else b""
    return data if len(data) == size else None


def main() -> None:
    """The child: read frames from stdin into a :class:`TraceWriter` until stdin closes."""
    from pilothouse import logs
    from pilothouse.store import Database
    from pilothouse.tracing.writer import TraceWriter

    # Ctrl-C and service managers signal the whole process group; the child must outlive the
    # server to commit what it was sent, and it stops when the server closes its stdin.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_IGN)
    # Background work: when the cores are busy, serving requests comes first. Spans wait in
    # the pipe and the server's bounded buffer (spilled to disk beyond it), never dropped.
    priority.lower(NICENESS)
    settings = load_settings(orjson.loads(os.environ[SETTINGS_ENV]), environ={})
    logs.configure(settings.log_level, settings.log_format)
    db = Database(settings.effective_database_url)
    writer = TraceWriter(db, settings)
    writer.start()
    max_chars = settings.gateway_content_max_chars
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    watch = Watch(writer, stdin.fileno())
    watch.start()
    try:
        while True:
            head = _read_exactly(stdin, FRAME.size)
            if head is None:
                return
            kind, size = FRAME.unpack(head)
            payload = _read_exactly(stdin, size)
            if payload is None:
                return
            watch.frames += 1
            if kind == SPANS:
                writer.submit([parse(line, max_chars) for line in payload.split(b"\n")])
            elif kind == FLUSH:
                watch.hurry.set()  # the server waits for it
                try:
                    stdout.write(b"1\n" if writer.flush() else b"0\n")
                    stdout.flush()
                finally:
                    watch.hurry.clear()
    finally:
        watch.hurry.set()  # the server is stopping: commit the rest now
        watch.stop()
        writer.close()
        db.close()


if __name__ == "__main__":
    main()


__all__ = ["WriterProcess", "main", "parse", "serialize", "write_spill"]
