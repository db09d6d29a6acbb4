"""Submitted spans written by a child process (``tracing_writer_process``): nothing is lost."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from pilothouse.gateway.spans import facts
from pilothouse.runtime import Runtime
from pilothouse.store import migrate
from pilothouse.tracing.model import Span
from pilothouse.tracing.process import NICENESS, Watch, WriterProcess
from pilothouse.tracing.writer import TraceWriter
from tests.conftest import make_settings
from tests.gateway.test_spans import _call
from tests.tracing.test_writer import database_locked, spans, stored, unmigrated, wait_for


def writer_with_process(
    tmp_path: Path, database_url: str, **overrides: Any
) -> tuple[Runtime, TraceWriter]:
    """A migrated runtime and a writer whose submitted spans go to a writer process."""
    settings = make_settings(tmp_path, database_url, tracing_writer_process=True, **overrides)
    rt = Runtime(settings)
    rt.migrate()
    rt.bootstrap()
    return rt, TraceWriter(rt.db, settings)


def test_submitted_spans_are_committed_by_the_child(tmp_path: Path, database_url: str):
    rt, w = writer_with_process(tmp_path, database_url)
    try:
        for _ in range(20):
            w.submit(spans(5))
        assert w.process is not None
        assert w.flush(60)
        assert stored(rt.db) == 100
        assert w.process.stats["sent"] == 100
        assert w._thread is None  # the server's own writer thread never ran
        assert w.process._child is not None
        # Background work: the child yields the cores to the server's requests.
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, w.process._child.pid) == min(19, ours + NICENESS)
        w.process._child.send_signal(signal.SIGTERM)  # e.g. sent to the process group
        w.submit(spans(3))  # the same child takes later batches
        assert w.flush(60)
        assert stored(rt.db) == 103 and w.process.stats["children"] == 1
    finally:
        w.close()
        rt.db.close()


def ended_now(n: int) -> list[Span]:
    out = spans(n)
    for span in out:
        span.end_time_ns = time.time_ns()
    return out


def child_classes(process: WriterProcess) -> list[int]:
    """The scheduling classes of the child's threads, its main thread's first."""
    assert process._child is not None
    pid = process._child.pid
    tasks = sorted(int(t.name) for t in Path(f"/proc/{pid}/task").iterdir())
    return [os.sched_getscheduler(t) for t in sorted(tasks, key=lambda t: t != pid)]


def at_rest(process: WriterProcess) -> bool:
    """Only the watch competes for the cores: every other thread waits for idle ones."""
    classes = child_classes(process)
    return classes[0] == os.SCHED_IDLE and classes.count(os.SCHED_OTHER) == 1


def behind(process: WriterProcess) -> bool:
    return set(child_classes(process)) == {os.SCHED_OTHER}


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling classes")
def test_the_child_uses_idle_cores_until_spans_have_waited_too_long(
    tmp_path: Path, database_url: str
):
    rt, w = writer_with_process(tmp_path, database_url)
    try:
        w.submit(ended_now(2))
        assert w.flush(60) and w.process is not None
        wait_for(lambda: at_rest(w.process))
        with database_locked(rt.db):  # the spans cannot be committed until the block ends
            w.submit(spans(3))  # ended long ago: more than BEHIND_SECONDS
            wait_for(lambda: behind(w.process))
        w.submit(ended_now(1))
        assert w.flush(60)  # caught up
        wait_for(lambda: at_rest(w.process))
        assert stored(rt.db) == 6
    finally:
        w.close()
        rt.db.close()


def test_the_watch_finds_the_child_behind(tmp_path: Path, database_url: str):
    settings = make_settings(tmp_path, database_url)  # the child's own writer: no process
    rt = Runtime(settings)
    rt.migrate()
    w = TraceWriter(rt.db, settings)
    read_end, write_end = os.pipe()
    watch = Watch(w, read_end)
    try:
        assert not watch.behind()
        # Spans in the pipe that the child does not read for a whole period: behind.
        os.write(write_end, b"S...")
        assert not watch.behind()  # the first look at them
        assert watch.behind()
        watch.frames += 1  # it read a frame: keeping up, though more waits
        assert not watch.behind()
        os.read(read_end, 4)
        # The oldest span it holds waited too long.
        w.submit(spans(1))  # ended in 2023
        assert watch.behind()
        assert w.flush(60)
        assert not watch.behind()
        w.submit(ended_now(1))
        assert not watch.behind()
        watch.hurry.set()  # the server waits for a flush
        assert watch.behind()
    finally:
        os.close(read_end)
        os.close(write_end)
        w.close()
        rt.db.close()


def test_a_dead_child_is_replaced_and_nothing_is_lost(tmp_path: Path, database_url: str):
    rt, w = writer_with_process(tmp_path, database_url)
    try:
        w.submit(spans(4))
        assert w.flush(60)
        assert w.process is not None and w.process._child is not None
        w.process._child.kill()
        w.process._child.wait()
        w.submit(spans(6))  # sent to a new child, or spilled if the pipe was already broken
        assert w.flush(60)
        w.replay()
        assert stored(rt.db) == 10
        assert not w.spilled_files()
    finally:
        w.close()
        rt.db.close()


def test_the_child_spills_what_it_cannot_store_and_it_is_replayed(
    tmp_path: Path, database_url: str
):
    # A database without the tables fails every write, like one that is down.
    _, db = unmigrated(tmp_path, database_url)
    settings = make_settings(tmp_path, database_url, tracing_writer_process=True)
    w = TraceWriter(db, settings)
    w.submit(spans(7))
    w.close()  # the child gives up on the database: its spans go to the spill directory
    assert w.spilled_files()
    migrate.upgrade(db)
    back = TraceWriter(db, settings)
    try:
        assert back.replay() == 7
        assert stored(db) == 7
    finally:
        back.close()
        db.close()


def test_beyond_the_buffer_the_server_spills_without_waiting(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
):
    rt, w = writer_with_process(tmp_path, database_url, tracing_buffer_spans=10)
    try:
        assert w.process is not None
        start = w.process._start_thread
        monkeypatch.setattr(w.process, "_start_thread", lambda: None)  # a child that lags
        for _ in range(8):
            w.submit(spans(5))
        assert w.pending <= 10
        assert w.process.stats["spilled"] >= 30
        assert w.spilled_files()
        start()
        assert w.flush(60)
        w.replay()
        assert stored(rt.db) == 40  # nothing dropped
    finally:
        w.close()
        rt.db.close()


def test_gateway_calls_spill_as_spans(tmp_path: Path, database_url: str):
    # Gateway calls travel as their facts; what spills is the span the writer replays.
    feeder = WriterProcess(make_settings(tmp_path, database_url, tracing_writer_process=True))
    feeder.close()
    feeder.submit_line(orjson.dumps(facts(_call()), default=str))
    [path] = feeder.spill_dir.glob("*.jsonl")
    span = Span(**orjson.loads(path.read_bytes()))
    assert (span.name, span.request_model, span.input_tokens) == ("chat m", "m", 5)
    assert feeder.stats["spilled"] == 1
