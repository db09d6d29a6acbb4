"""Latency of the guardrail checks and the default input policy on a 1 KB prompt.

Run: python bench/guardrails.py [--repeat 2000]. Prints p50/p95/p99 in milliseconds for each
built-in check alone, the pattern checks together (PII + secrets + keywords + regex), and the
whole ``default`` input policy (secrets, injection with its classifier, PII pseudonymization).
Each figure is the best p50 of five rounds (the machine is shared); p95/p99 are of that round.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

from pilothouse.guardrails import Vault, check
from pilothouse.guardrails.engine import collect_checks

PROMPT = (
    "Hi team, I'm following up on the order we discussed last week. The customer, reachable at "
    "jane.doe@example.com or +1 415 555 0134, says the invoice total doesn't match the quote we "
    "sent on March 3rd. Could you check the line items against the contract and tell me whether "
    "the discount was applied before or after tax? Our finance system exported the attached CSV "
    "with 42 rows; rows 17 through 23 look duplicated, which might explain the difference. "
    "Please summarize the discrepancy in three bullet points, suggest a polite reply to the "
    "customer, and draft a short note for the account manager explaining what went wrong and "
    "how we will prevent it next quarter. Keep the tone friendly and professional, avoid "
    "internal jargon, and mention that a corrected invoice will follow within two business "
    "days. If anything is unclear, list the questions you would ask before replying. Thanks a "
    "lot for your help with this, it is the third time this month that a quote and an invoice "
    "disagree, so a short root-cause paragraph would be welcome as well."
)
assert 1000 <= len(PROMPT.encode()) <= 1100, len(PROMPT.encode())

OPTIONS: dict[str, dict[str, Any]] = {
    "keywords": {"words": ["confidential", "project orion"], "topics": {"rivals": ["acme"]}},
    "regex": {"patterns": {"TICKET": r"\bJIRA-\d+\b"}},
}


def timings(func: Callable[[], object], repeat: int) -> list[float]:
    func()
    best: list[float] = []
    for _ in range(5):
        round_ms = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            func()
            round_ms.append((time.perf_counter() - t0) * 1000)
        if not best or statistics.median(round_ms) < statistics.median(best):
            best = round_ms
    return best


def report(name: str, ms: list[float]) -> None:
    q = statistics.quantiles(ms, n=100)
    print(f"{name:<42} p50 {statistics.median(ms):7.3f}  p95 {q[94]:7.3f}  p99 {q[98]:7.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    checks = collect_checks()
    print(f"prompt: {len(PROMPT.encode())} bytes")
    for name in ("pii", "secrets", "keywords", "regex", "injection", "toxicity"):
        c = checks[name]
        opts = {**c.defaults, **OPTIONS.get(name, {})}
        report(
            f"check {name}", timings(functools.partial(c.scan, PROMPT, "input", opts), args.repeat)
        )
    patterns = [
        (checks[n], {**checks[n].defaults, **OPTIONS.get(n, {})})
        for n in ("pii", "secrets", "keywords", "regex")
    ]
    report(
        "pattern checks together (pii+secrets+kw+regex)",
        timings(lambda: [c.scan(PROMPT, "input", o) for c, o in patterns], args.repeat),
    )
    report(
        "injection heuristics only (no model/similarity)",
        timings(
            lambda: checks["injection"].scan(
                PROMPT, "input", {"classifier": False, "similarity": False}
            ),
            args.repeat,
        ),
    )
    report(
        "default input policy (check())",
        timings(lambda: check(PROMPT, "default", "input", Vault()), args.repeat),
    )
    report(
        "strict input policy (+toxicity)",
        timings(lambda: check(PROMPT, "strict", "input", Vault()), args.repeat),
    )


if __name__ == "__main__":
    main()
