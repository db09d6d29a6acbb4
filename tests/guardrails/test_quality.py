"""Quality targets on the held-out split of the development corpora (../shared/corpora).

The rows of the ``test`` split (stable hash of the row id) are never used for training or
thresholds (scripts/train_guardrails.py reads ``train`` and ``valid`` only). Skipped when the
corpora are not present; CI has them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pilothouse.guardrails.bench import rows_of, score_rows
from pilothouse.guardrails.corpus import DEFAULT_DIR
from pilothouse.guardrails.engine import collect_checks

pytestmark = pytest.mark.skipif(not DEFAULT_DIR.is_dir(), reason="corpora not present")
CHECKS = collect_checks()


def corpus(name: str) -> Path:
    return DEFAULT_DIR / name


def test_injection_f1_at_low_false_positive_rate() -> None:
    score = score_rows(
        CHECKS["injection"], rows_of(corpus("injection_jailbreak.jsonl"), "test"), "input", 0.5
    )
    assert score.f1 >= 0.90, score.row()
    assert score.fpr is not None and score.fpr <= 0.02, score.row()


def test_injection_does_not_fire_on_harmful_but_plain_requests() -> None:
    # XSTest: harmful-intent and safe look-alike prompts; neither is an injection.
    rows = [dict(r, label=0) for r in rows_of(corpus("xstest_harmful_vs_safe.jsonl"), "test")]
    score = score_rows(CHECKS["injection"], rows, "input", 0.5)
    assert score.fpr is not None and score.fpr <= 0.05, score.row()


@pytest.mark.parametrize("split", ["test", "all"])
def test_pii_recall_and_precision(split: str) -> None:
    score = score_rows(
        CHECKS["pii"], rows_of(corpus("pii_presidio_synth.jsonl"), split), "input", 0.5
    )
    assert score.recall >= 0.95, score.row()
    assert score.precision >= 0.90, score.row()


def test_secrets_recall() -> None:
    rows = [
        r
        for r in rows_of(corpus("secrets.jsonl"), "test")
        if r["category"] != "secret_identifier_or_other"  # bucket names, account ids: not secrets
    ]
    score = score_rows(CHECKS["secrets"], rows, "input", 0.5)
    assert score.recall >= 0.95, score.row()
    assert score.fpr is not None and score.fpr <= 0.05, score.row()


def test_toxicity_f1() -> None:
    score = score_rows(
        CHECKS["toxicity"], rows_of(corpus("toxicity_davidson.jsonl"), "test"), "input", 0.5
    )
    assert score.f1 >= 0.85, score.row()
