"""Measure checks on a labelled corpus: precision, recall, F1, false-positive rate, latency.

Classification corpora (``label`` 1 = the check should fire) are scored per row; PII corpora
(rows with ``spans``) are scored per span: a gold span counts as found when a finding of the
mapped type overlaps it, and a finding that overlaps no gold span of its type is a false positive.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilothouse.guardrails.corpus import read_jsonl, split_of
from pilothouse.guardrails.model import Check, Finding, Where
from pilothouse.guardrails.rewrite import resolve_overlaps

#: Corpus PII types -> Pilothouse types. Types left out are not pattern-detectable PII here.
PII_TYPES: dict[str, str] = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "US_SSN": "US_SSN",
    "IP_ADDRESS": "IP_ADDRESS",
    "DOMAIN_NAME": "URL",
}
#: Found, but neither rewarded nor punished (not all such spans are personal data).
PII_NEUTRAL: dict[str, str] = {
    "STREET_ADDRESS": "ADDRESS",
    "DATE_TIME": "DATE_OF_BIRTH",
    "US_DRIVER_LICENSE": "ID_NUMBER",
    "ZIP_CODE": "ADDRESS",
}


@dataclass
class Score:
    """Confusion counts and latencies of one check on one corpus."""

    check: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    by_category: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def fpr(self) -> float | None:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else None

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        if len(self.latencies_ms) == 1:
            return self.latencies_ms[0]
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[int(q) - 1]

    def row(self) -> dict[str, Any]:
        fpr = self.fpr
        return {
            "check": self.check,
            "n": self.tp + self.fp + self.fn + self.tn,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "fpr": None if fpr is None else round(fpr, 4),
            "p50_ms": round(self.percentile(50), 4),
            "p95_ms": round(self.percentile(95), 4),
            "p99_ms": round(self.percentile(99), 4),
            "categories": {f"{c}|{o}": n for (c, o), n in sorted(self.by_category.items())},
        }


def guess_check(path: Path) -> tuple[str, Where]:
    """The check (and where it runs) a corpus file is meant for, from its name."""
    name = path.name.lower()
    if "indirect" in name or "bipia" in name:
        return "injection", "context"
    for key in ("pii", "secrets", "toxicity", "injection"):
        if key in name:
            return key, "input"
    if "jailbreak" in name:
        return "injection", "input"
    return "", "input"


def rows_of(path: Path, split: str) -> list[dict[str, Any]]:
    return [r for r in read_jsonl(path) if split == "all" or split_of(r) == split]


def _timed(
    check: Check, text: str, where: Where, options: Mapping[str, Any]
) -> tuple[list[Finding], float]:
    t0 = time.perf_counter()
    found = check.scan(text, where, options)
    return found, (time.perf_counter() - t0) * 1000


def score_rows(
    check: Check,
    rows: Iterable[dict[str, Any]],
    where: Where,
    threshold: float,
    options: Mapping[str, Any] | None = None,
    progress: Callable[[Iterable[dict[str, Any]]], Iterator[dict[str, Any]]] | None = None,
) -> Score:
    """Score ``check`` on classification or PII rows."""
    opts = {**check.defaults, **(options or {})}
    score = Score(check.name)
    items = progress(rows) if progress else iter(rows)
    for row in items:
        found, ms = _timed(check, row["text"], where, opts)
        score.latencies_ms.append(ms)
        hits = [f for f in found if f.score >= threshold]
        category = str(row.get("category") or "-")
        if "spans" in row:
            _score_spans(score, row, resolve_overlaps(hits) if check.spans else hits)
            continue
        fired = bool(hits)
        label = int(row["label"])
        outcome = {(1, 1): "tp", (0, 1): "fp", (1, 0): "fn", (0, 0): "tn"}[(label, int(fired))]
        setattr(score, outcome, getattr(score, outcome) + 1)
        score.by_category[(category, outcome)] += 1
    return score


def _score_spans(score: Score, row: dict[str, Any], hits: list[Finding]) -> None:
    used: set[int] = set()
    for span in row["spans"]:
        gold = PII_TYPES.get(span["type"]) or PII_NEUTRAL.get(span["type"]) or ""
        overlapping = [
            n
            for n, f in enumerate(hits)
            if f.type == gold and f.start < span["end"] and f.end > span["start"]
        ]
        used.update(overlapping)
        if span["type"] not in PII_TYPES:
            continue
        outcome = "tp" if overlapping else "fn"
        setattr(score, outcome, getattr(score, outcome) + 1)
        score.by_category[(gold, outcome)] += 1
    neutral = set(PII_NEUTRAL.values()) - set(PII_TYPES.values())
    for n, f in enumerate(hits):
        if n in used or f.type in neutral:
            continue
        score.fp += 1
        score.by_category[(f.type, "fp")] += 1


def latency_sample(check: Check, text: str, where: Where, repeat: int = 200) -> list[float]:
    """Latencies (ms) of ``repeat`` runs of ``check`` on ``text`` (warm)."""
    opts = dict(check.defaults)
    check.scan(text, where, opts)
    return [_timed(check, text, where, opts)[1] for _ in range(repeat)]


__all__ = ["PII_TYPES", "Score", "guess_check", "latency_sample", "rows_of", "score_rows"]
