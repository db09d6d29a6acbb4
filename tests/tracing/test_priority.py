"""The trace writer process's CPU priority: idle class at rest, normal when urgent or behind.

Each test runs in its own Python process: the priority belongs to the process that lowers it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling classes")

CHECKS = """
import os, threading
from pilothouse.tracing import priority

IDLE, OTHER = os.SCHED_IDLE, os.SCHED_OTHER
nice = os.getpriority(os.PRIO_PROCESS, 0)

def policy(tid=0):
    return os.sched_getscheduler(tid)

class Helper(threading.Thread):
    # A second thread, to see set_behind reach every thread.
    def __init__(self):
        super().__init__(daemon=True)
        self.ready, self.stop = threading.Event(), threading.Event()
    def run(self):
        self.ready.set()
        self.stop.wait()

assert priority.lower(7) is True
assert os.getpriority(os.PRIO_PROCESS, 0) == min(19, nice + 7)
helper = Helper()
helper.start()
helper.ready.wait()
assert policy() == IDLE and policy(helper.native_id) == IDLE  # new threads inherit it

with priority.urgent():
    assert policy() == OTHER and policy(helper.native_id) == IDLE
    with priority.urgent():  # nested: still urgent when the inner block ends
        pass
    assert policy() == OTHER
assert policy() == IDLE

priority.set_behind(True)
assert policy() == OTHER and policy(helper.native_id) == OTHER
with priority.urgent():
    assert policy() == OTHER
assert policy() == OTHER  # still behind
with priority.urgent():
    priority.set_behind(False)  # caught up while urgent: this thread stays normal
    assert policy() == OTHER and policy(helper.native_id) == IDLE
assert policy() == IDLE
# Back in the normal class, a thread keeps the nice value it had.
priority.set_behind(True)
assert os.getpriority(os.PRIO_PROCESS, helper.native_id) == min(19, nice + 7)
print("ok")
"""


def run(script: str, prefix: list[str] | None = None) -> str:
    done = subprocess.run(
        [*(prefix or []), sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_lowered_threads_run_idle_unless_urgent_or_behind():
    assert run(CHECKS) == "ok"


def test_in_other_processes_nothing_changes():
    script = """
    import os
    from pilothouse.tracing import priority
    with priority.urgent():
        priority.set_behind(True)
        print(os.sched_getscheduler(0) == os.SCHED_OTHER, os.getpriority(os.PRIO_PROCESS, 0))
    """
    assert run(script) == f"True {os.getpriority(os.PRIO_PROCESS, 0)}"


def test_without_the_right_to_leave_the_idle_class_it_is_never_entered():
    # Many containers lack CAP_SYS_NICE: the process would be stuck on idle cores.
    setpriv = shutil.which("setpriv")
    if setpriv is None or os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("CI runs as root with util-linux's setpriv")
        pytest.skip("dropping CAP_SYS_NICE needs root and setpriv")
    script = """
    import os
    from pilothouse.tracing import priority
    lowered = priority.lower(5)
    with priority.urgent():
        pass
    priority.set_behind(True)
    priority.set_behind(False)
    print(lowered, os.sched_getscheduler(0) == os.SCHED_OTHER, os.getpriority(os.PRIO_PROCESS, 0))
    """
    nice = min(19, os.getpriority(os.PRIO_PROCESS, 0) + 5)
    out = run(script, [setpriv, "--bounding-set", "-sys_nice", "--"])
    assert out == f"False True {nice}"
