"""Labelled corpora for training and benchmarks: loading, a stable split, license filtering.

Rows are ``{"id", "text", "label", "category", "source"}`` (PII rows have ``spans``). The split
is a stable hash of the row id, so every run and every machine agrees on which rows are held out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Where the development corpora live, relative to the repository (may be absent).
DEFAULT_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "corpora"

#: Sources whose license does not allow shipping derived weights (README of the corpora).
_RESTRICTED_SOURCES = ("codealpaca", "tensor-trust")
#: Categories whose text comes from a restricted or unverified source.
_RESTRICTED_CATEGORIES = frozenset(
    {
        "benign_coding_request",  # CodeAlpaca, CC BY-NC
        "benign_code_snippet",  # CodeAlpaca, CC BY-NC
        "code_answer_clean",  # Stack Overflow contexts, CC BY-SA
        "code_answer_injected",
        "injection_hijacking_tensortrust",  # no license
        "injection_extraction_tensortrust",
    }
)


def bucket(row_id: str, buckets: int = 10) -> int:
    """A stable bucket 0..buckets-1 for ``row_id``."""
    return int(hashlib.sha256(row_id.encode()).hexdigest()[:8], 16) % buckets


def split_of(row: dict[str, Any]) -> str:
    """``test`` (20%, held out: only the benchmark reads it), ``valid`` (10%) or ``train``."""
    key = str(row.get("template_id", row["id"])) if "spans" in row else str(row["id"])
    b = bucket(key)
    if b in (0, 1):
        return "test"
    if b == 2:
        return "valid"
    return "train"


def trainable(row: dict[str, Any]) -> bool:
    """May weights derived from this row ship in the package (license-compatible source)?"""
    source = str(row.get("source", "")).lower()
    if any(s in source for s in _RESTRICTED_SOURCES):
        return False
    return row.get("category") not in _RESTRICTED_CATEGORIES


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f):
            if line.strip():
                row = json.loads(line)
                row.setdefault("id", f"{path.stem}-{n}")
                yield row


__all__ = ["DEFAULT_DIR", "bucket", "read_jsonl", "split_of", "trainable"]
