"""Python targets and evaluators used by the tests (referenced as ``module:function``)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from pilothouse.errors import UpstreamError
from pilothouse.evals import Sample, Score

FLAKY: dict[str, int] = {}


def slow_echo(value: Any) -> str:
    """Echo the country after a pause; log each call (for the crash/resume test)."""
    log = os.environ.get("EVAL_CALL_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{os.environ.get('EVAL_PHASE', '')} {value['country']}\n")
    time.sleep(float(os.environ.get("EVAL_DELAY", "0.02")))
    return str(value["country"])


def flaky(value: Any) -> str:
    """Fails once per input with a retryable error; 'boom' always fails for good."""
    key = str(value)
    if "boom" in key:
        raise ValueError("the target broke")
    FLAKY[key] = FLAKY.get(key, 0) + 1
    if FLAKY[key] == 1:
        raise UpstreamError("transient")
    return key


def has_digit(sample: Sample, options: Mapping[str, Any]) -> Score:
    found = any(c.isdigit() for c in sample.text)
    return Score(1.0 if found else 0.0, reason="digit" if found else "no digit")
