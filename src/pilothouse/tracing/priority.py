"""How hard the trace writer process competes for the CPU: idle cores only, unless it must not.

The child process that commits the gateway's spans (:mod:`pilothouse.tracing.process`) does
background work. At ``nice`` 10 it still took a share of busy cores, and a request arriving
while it ran waited for the scheduler to preempt it. :func:`lower` puts it in Linux's idle
scheduling class (``SCHED_IDLE``) instead: it runs only on cores that nothing else wants, and
the request path never waits for it. Two exceptions return threads to the normal class (at
their ``nice`` value) for a while:

- **Behind** (:func:`set_behind`): when spans have waited longer than the writer process
  allows (or someone waits for them), every thread competes again until it has caught up. A
  machine kept busy by other work then delays spans by a bounded time; it never starves the
  writer.
- **Urgent** (:func:`urgent`): while a thread writes a batch
  (:meth:`~pilothouse.tracing.batch.SpanStore.write`: the database's write lock and the
  transaction). Other processes queue for that lock and those rows, and would otherwise wait
  for an idle core to free them.

Leaving the idle class needs ``CAP_SYS_NICE`` or an ``RLIMIT_NICE`` that allows the process's
``nice`` value, which many containers do not give. :func:`lower` tries it on a throwaway thread
first (scheduling classes belong to threads on Linux) and, where it fails or there is no idle
class, keeps the process in the normal class at its ``nice`` value. In any other process these
functions do nothing.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

_state = threading.Lock()
_lowered = False  # this process runs its threads in the idle class
_behind = False
_urgent: dict[int, int] = {}  # native thread id -> depth of urgent() blocks


def _set_class(thread_id: int, idle: bool) -> None:
    policy = os.SCHED_IDLE if idle else os.SCHED_OTHER
    with contextlib.suppress(ProcessLookupError):  # the thread has ended
        os.sched_setscheduler(thread_id, policy, os.sched_param(0))


def _reversible() -> bool:
    """Whether a thread of this process can enter the idle class and leave it again."""
    if not hasattr(os, "SCHED_IDLE"):
        return False
    works: list[bool] = []

    def probe() -> None:
        try:
            _set_class(0, True)
            _set_class(0, False)
        except OSError:
            works.append(False)
        else:
            works.append(True)

    thread = threading.Thread(target=probe, name="pilothouse-priority-probe")
    thread.start()
    thread.join()
    return works == [True]


def lower(niceness: int) -> bool:
    """Lower this process's priority: ``nice`` by ``niceness``, then every thread in the idle
    class when it can leave it again. Returns whether it did the latter."""
    global _lowered
    os.nice(niceness)
    if not _reversible():
        return False
    with _state:
        _lowered = True
        for thread in threading.enumerate():
            if thread.native_id is not None:
                _set_class(thread.native_id, not _urgent.get(thread.native_id))
    return True


def set_behind(behind: bool) -> None:
    """Whether this process has fallen behind: all its threads compete for busy cores until
    it is called with ``False`` again."""
    global _behind
    with _state:
        if not _lowered or behind == _behind:
            return
        _behind = behind
        for thread in threading.enumerate():
            if thread.native_id is not None:
                _set_class(thread.native_id, not behind and not _urgent.get(thread.native_id))


@contextlib.contextmanager
def urgent() -> Iterator[None]:
    """Run the block in the normal class (this thread): others are waiting for it."""
    if not _lowered:
        yield
        return
    me = threading.get_native_id()
    with _state:
        depth = _urgent.get(me, 0)
        _urgent[me] = depth + 1
        if not depth and not _behind:
            _set_class(me, False)
    try:
        yield
    finally:
        with _state:
            depth = _urgent.pop(me) - 1
            if depth:
                _urgent[me] = depth
            elif not _behind:
                _set_class(me, True)


__all__ = ["lower", "set_behind", "urgent"]
