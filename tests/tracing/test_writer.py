"""The trace writer: group commit, back-pressure, spill to disk and replay, idempotence."""

from __future__ import annotations

import asyncio
import fcntl
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from pilothouse.errors import BadRequest, Unavailable
from pilothouse.runtime import Runtime
from pilothouse.settings import Settings
from pilothouse.store import Database, migrate, trace_writes
from pilothouse.store import traces as store
from pilothouse.store.types import utcnow
from pilothouse.tracing import batch
from pilothouse.tracing.batch import CHECKPOINT_SPANS, SpanStore
from pilothouse.tracing.model import Span
from pilothouse.tracing.writelock import WriteLock
from pilothouse.tracing.writer import TraceWriter
from tests.conftest import make_settings


def spans(n: int, trace_id: str | None = None) -> list[Span]:
    trace_id = trace_id or secrets.token_hex(16)
    return [
        Span(
            project_id=1,
            trace_id=trace_id,
            span_id=secrets.token_hex(8),
            name=f"span {i}",
            start_time_ns=1_700_000_000_000_000_000 + i,
            end_time_ns=1_700_000_000_100_000_000 + i,
            parent_span_id=None if i == 0 else "0" * 15 + "1",
        )
        for i in range(n)
    ]


def stored(db: Database) -> int:
    with db.read() as conn:
        return store.count_spans(conn)


@contextmanager
def database_locked(db: Database) -> Iterator[None]:
    """Hold the write lock from another connection so the writer has to wait."""
    with db.write() as conn:  # BEGIN IMMEDIATE on SQLite
        if db.dialect == "postgresql":
            conn.exec_driver_sql("LOCK TABLE traces IN EXCLUSIVE MODE")
        yield


def wait_for(condition: object, timeout: float = 10.0) -> None:
    event = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if callable(condition) and condition():
            return
        event.wait(0.01)
    raise AssertionError("condition not reached")


@pytest.fixture
def writer(runtime: Runtime) -> Iterator[TraceWriter]:
    w = TraceWriter(runtime.db, runtime.settings)
    yield w
    w.close()


async def test_concurrent_writers_share_one_transaction(runtime: Runtime, writer: TraceWriter):
    writer.start()
    with database_locked(runtime.db):
        first = asyncio.ensure_future(writer.write(spans(3)))
        await asyncio.to_thread(wait_for, lambda: writer._busy == 3)
        others = [asyncio.ensure_future(writer.write(spans(5))) for _ in range(20)]
        await asyncio.to_thread(wait_for, lambda: writer.pending == 103)
        assert not first.done() and not any(o.done() for o in others)
    await asyncio.gather(first, *others)
    assert writer.stats["batches"] == 2  # the 20 waiting producers were committed together
    assert stored(runtime.db) == 103


async def test_full_queue_answers_unavailable_with_retry_after(tmp_path: Path, database_url: str):
    settings = make_settings(tmp_path, database_url, tracing_queue_spans=50)
    rt = Runtime(settings)
    rt.migrate()
    rt.bootstrap()
    w = TraceWriter(rt.db, settings)
    try:
        with database_locked(rt.db):
            accepted = asyncio.ensure_future(w.write(spans(40)))
            await asyncio.to_thread(wait_for, lambda: w.pending == 40)
            with pytest.raises(Unavailable) as refused:
                await w.write(spans(20))
            assert refused.value.retry_after is not None and refused.value.retry_after >= 1
            assert "Retry-After" in refused.value.headers()
        await accepted
        assert stored(rt.db) == 40  # the refused spans were never acknowledged nor stored
    finally:
        w.close()
        rt.db.close()


def test_submit_spills_the_oldest_beyond_the_buffer_and_replays_them(
    tmp_path: Path, database_url: str
):
    settings = make_settings(tmp_path, database_url, tracing_buffer_spans=10)
    rt = Runtime(settings)
    rt.migrate()
    rt.bootstrap()
    w = TraceWriter(rt.db, settings)
    try:
        with database_locked(rt.db):
            for _ in range(6):
                w.submit(spans(5))
            assert w.spilled_files()
            # The writer holds (blocked) what it took, the buffer at most 10: the rest spilled.
            assert w.stats["spilled"] >= 30 - 10 - w._busy
        assert w.flush()
        w.replay()
        assert not w.spilled_files()
        assert stored(rt.db) == 30  # nothing dropped
    finally:
        w.close()
        rt.db.close()


def unmigrated(tmp_path: Path, database_url: str) -> tuple[Settings, Database]:
    settings = make_settings(tmp_path, database_url)
    return settings, Database(settings.effective_database_url)


async def test_database_down_spills_submitted_spans_and_refuses_writes(
    tmp_path: Path, database_url: str
):
    # A database without the tables fails every write, like one that is down.
    settings, db = unmigrated(tmp_path, database_url)
    w = TraceWriter(db, settings)
    try:
        with pytest.raises(Unavailable):
            await w.write(spans(4))
        w.submit(spans(7))
        assert w.flush()
        wait_for(lambda: w.stats["spilled"] == 7)
        assert len(w.spilled_files()) == 1
    finally:
        w.close()
    migrate.upgrade(db)  # the database is back
    back = TraceWriter(db, settings)
    try:
        assert back.replay() == 7
        assert not back.spilled_files()
        assert stored(db) == 7  # the refused write was never acknowledged, so not stored
    finally:
        back.close()
        db.close()


def test_spilled_spans_survive_a_restart(tmp_path: Path, database_url: str):
    settings, db = unmigrated(tmp_path, database_url)
    first = TraceWriter(db, settings)
    first.submit(spans(3))
    first.close()
    assert len(first.spilled_files()) == 1
    migrate.upgrade(db)
    second = TraceWriter(db, settings)
    try:
        second.start()  # replays what the previous process spilled
        wait_for(lambda: not second.spilled_files())
        assert stored(db) == 3
    finally:
        second.close()
        db.close()


def test_duplicates_within_and_across_batches_are_stored_once(
    runtime: Runtime, writer: TraceWriter
):
    batch = spans(4)
    writer.write_sync(batch + batch[:2])
    writer.write_sync(batch)
    assert stored(runtime.db) == 4
    assert writer.stats["duplicates"] == 6
    with runtime.db.read() as conn:
        trace = store.get_trace(conn, 1, batch[0].trace_id)
    assert trace is not None and trace["span_count"] == 4


def test_a_trace_arriving_in_pieces_is_merged(runtime: Runtime, writer: TraceWriter):
    trace_id = secrets.token_hex(16)
    root, child = spans(2, trace_id)
    child.request_model = "gpt-4o"
    child.input_tokens = 7
    child.input = "from the child"
    root.input = "from the root"
    root.user_id = "u1"
    writer.write_sync([child])
    writer.write_sync([root])
    with runtime.db.read() as conn:
        trace = store.get_trace(conn, 1, trace_id)
    assert trace is not None
    assert (trace["name"], trace["has_root"], trace["span_count"]) == ("span 0", True, 2)
    assert (trace["model"], trace["input_tokens"], trace["user_id"]) == ("gpt-4o", 7, "u1")
    assert trace["input"] == "from the root"


def test_the_trace_summary_converges_whatever_order_its_spans_arrive_in(
    runtime: Runtime, writer: TraceWriter
):
    trace_id = secrets.token_hex(16)
    root, first_call, later_call, tool = spans(4, trace_id)
    root.tags = ["checkout"]
    first_call.request_model, first_call.provider = "gpt-4o", "openai"
    later_call.request_model, later_call.provider = "claude-sonnet-4", "anthropic"
    later_call.tags = ["retry", "checkout"]
    tool.tags = ["tools"]
    tool.session_id = "s1"
    # The later model call and the tool come first, the first call and the root last.
    writer.write_sync([later_call])
    writer.write_sync([tool, first_call])
    writer.write_sync([root])
    writer.write_sync([root, first_call, later_call, tool])  # a retrying exporter
    with runtime.db.read() as conn:
        trace = store.get_trace(conn, 1, trace_id)
    assert trace is not None
    # The model of the earliest model call, with its provider, not the first one stored.
    assert (trace["model"], trace["provider"]) == ("gpt-4o", "openai")
    assert trace["model_start_ns"] == first_call.start_time_ns
    assert trace["tags"] == ["retry", "checkout", "tools"]  # the union, first seen first
    assert (trace["session_id"], trace["span_count"]) == ("s1", 4)


def test_close_flushes_what_was_submitted(runtime: Runtime):
    w = TraceWriter(runtime.db, runtime.settings)
    w.submit(spans(9))
    w.close()
    assert stored(runtime.db) == 9
    assert not w.spilled_files()


def test_retention_job_deletes_old_traces_with_their_spans_scores_and_rollups(runtime: Runtime):
    from pilothouse.jobs import JobContext
    from pilothouse.store import identity
    from pilothouse.tracing.plugin import enforce_retention

    now_ns = time.time_ns()
    old = spans(3)
    new = spans(2)
    # ``spans()`` start at 1_700_000_000 s (November 2023): older than any retention here.
    for s in new:
        s.start_time_ns = now_ns - 1_000_000_000
        s.end_time_ns = now_ns
    runtime.traces.write_sync(old + new)
    with runtime.db.write() as conn:
        store.insert_score(
            conn,
            project_id=1,
            trace_id=old[0].trace_id,
            name="accuracy",
            data_type="numeric",
            value=1.0,
            source="api",
            metadata={},
            created_at=utcnow(),
        )
    context = JobContext(settings=runtime.settings, db=runtime.db)
    assert enforce_retention(context) == {}  # no retention configured: nothing deleted
    with runtime.db.write() as conn:
        identity.update_project(conn, 1, retention_days=30)
    assert enforce_retention(context) == {"1": 1}
    with runtime.db.read() as conn:
        assert store.get_trace(conn, 1, old[0].trace_id) is None
        assert store.get_trace(conn, 1, new[0].trace_id) is not None
        assert store.count_spans(conn) == 2
        assert store.scores_of(conn, 1, [old[0].trace_id]) == []
        buckets = conn.execute(sa.select(store.trace_rollups.c.bucket_s)).scalars().all()
    assert buckets and min(buckets) >= (now_ns // 1_000_000_000) - 31 * 86400
    assert runtime.jobs.specs["tracing.retention"].schedule == "17 * * * *"


async def test_a_span_that_cannot_be_stored_fails_only_its_own_producer(
    runtime: Runtime, writer: TraceWriter
):
    bad = spans(1)
    bad[0].input_tokens = 10**30  # beyond BIGINT: the database refuses it
    good = spans(2)
    writer.start()
    with database_locked(runtime.db):
        first = asyncio.ensure_future(writer.write(spans(1)))  # keeps the writer waiting
        await asyncio.to_thread(wait_for, lambda: writer._busy == 1)
        both = [asyncio.ensure_future(writer.write(bad)), asyncio.ensure_future(writer.write(good))]
        await asyncio.to_thread(wait_for, lambda: writer.pending == 4)  # one batch
    await first
    failed, ok = await asyncio.gather(*both, return_exceptions=True)
    assert ok is None
    assert isinstance(failed, BadRequest)
    assert stored(runtime.db) == 3
    assert writer._thread is not None and writer._thread.is_alive()


def test_writers_of_one_sqlite_file_take_turns_on_its_lock_file(tmp_path: Path):
    db = Database(f"sqlite:///{tmp_path}/p.db")
    first, second = WriteLock(db), WriteLock(db)  # two descriptors: as two processes would
    order: list[str] = []
    try:
        with first.hold():
            taken = threading.Event()

            def take() -> None:
                with second.hold():
                    order.append("second")
                    taken.set()

            waiter = threading.Thread(target=take)
            waiter.start()
            assert not taken.wait(0.3)  # blocked while the first holds it
            order.append("first")
        assert taken.wait(5)
        waiter.join()
        assert order == ["first", "second"]
        assert Path(f"{tmp_path}/p.db.write-lock").exists()
        assert WriteLock(Database("postgresql+psycopg://u@h/db")).path is None
    finally:
        first.close()
        second.close()
        db.close()


def lock_is_free(tmp_path: Path) -> bool:
    """Whether another process's writer could take the SQLite write lock now."""
    with open(f"{tmp_path}/p.db.write-lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


def test_sqlite_batches_sync_the_wal_and_checkpoint_it_after_the_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    db = Database(f"sqlite:///{tmp_path}/p.db")
    migrate.upgrade(db)
    with db.engine.connect() as conn:  # everything so far in the database file itself
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    span_store = SpanStore(db)
    file_size = Path(f"{tmp_path}/p.db").stat().st_size
    events: list[object] = []
    upsert_rollups, sync_wal = trace_writes.upsert_rollups, trace_writes.sync_wal

    def in_batch(conn: sa.Connection, rows: list[tuple[object, ...]]) -> None:
        events.append(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar())
        upsert_rollups(conn, rows)

    def synced(conn: sa.Connection) -> None:
        events.append(("synced, lock free:", lock_is_free(tmp_path)))
        sync_wal(conn)

    monkeypatch.setattr(trace_writes, "upsert_rollups", in_batch)
    monkeypatch.setattr(trace_writes, "sync_wal", synced)

    def checkpointed() -> bool:
        return Path(f"{tmp_path}/p.db").stat().st_size > file_size

    try:
        span_store.write(spans(CHECKPOINT_SPANS - 1))
        # no checkpoint in the commit; the WAL synced after the lock, before write returns
        assert events == [0, ("synced, lock free:", True)]
        assert not span_store.checkpoint_if_due()  # not due yet
        span_store.write(spans(1))
        assert not checkpointed()  # the commit itself did not checkpoint: it stays in the WAL
        assert span_store.checkpoint_if_due()
        assert checkpointed()
        assert not span_store.checkpoint_if_due()
        assert stored(db) == CHECKPOINT_SPANS
        with db.engine.connect() as conn:  # the pooled connection checkpoints on its own again
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    finally:
        span_store.close()
        db.close()


def test_a_long_wal_is_checkpointed_again_under_the_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    db = Database(f"sqlite:///{tmp_path}/p.db")
    migrate.upgrade(db)
    span_store = SpanStore(db)
    checkpoint = trace_writes.checkpoint
    lock_free: list[bool] = []

    def spy(conn: sa.Connection) -> tuple[int, int]:
        lock_free.append(lock_is_free(tmp_path))
        return checkpoint(conn)

    monkeypatch.setattr(trace_writes, "checkpoint", spy)
    try:
        span_store.write(spans(CHECKPOINT_SPANS))
        assert span_store.checkpoint_if_due()
        assert lock_free == [True]  # a short WAL: one pass, writers go on
        monkeypatch.setattr(batch, "WAL_RESTART_FRAMES", 10)
        span_store.write(spans(CHECKPOINT_SPANS))
        assert span_store.checkpoint_if_due()
        assert lock_free == [True, True, False]  # then what they added, with writers held off
        span_store.write(spans(1))
        with db.engine.connect() as conn:
            in_wal, _ = checkpoint(conn)
        assert in_wal < 50  # the next transaction wrote the WAL from its start again
        assert stored(db) == 2 * CHECKPOINT_SPANS + 1
    finally:
        span_store.close()
        db.close()
