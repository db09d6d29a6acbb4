"""A small linear text classifier: hashed word and character n-grams, logistic regression.

Inference is pure Python (no numpy): features are CRC32 hashes of n-grams into a fixed number
of buckets; the weights ship inside the package as a compressed JSON file and load in a few
milliseconds. Training lives in ``scripts/train_guardrails.py``.
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

_WORD = re.compile(r"[a-z0-9']+|[^\sa-z0-9']")


_WEIRD = re.compile(r"[(){}\[\]<>\\\"=#;|`*~^]")
_LETTER = re.compile(r"[A-Za-z]")
_CAMEL = re.compile(r"[a-z][A-Z]")
_DIGIT = re.compile(r"\d")


def shape(raw: str) -> list[str]:
    """Pseudo-words describing the raw text's shape: optimized-suffix junk, length, case.

    Adversarial suffixes (GCG and kin) end a request with tokens glued to symbols, camelCase
    fragments and letter-digit mixes; the model learns how much that tail junk matters.
    """
    out = [f"__len{min(12, len(raw).bit_length())}"]
    tail = raw[-220:]
    tokens = tail.split()[-30:]
    if len(tokens) >= 8 and "\n" not in tail.strip():
        weird = 0
        for t in tokens:
            core = t.strip(".,!?:;'\"")
            if (
                (_WEIRD.search(t) and _LETTER.search(t))
                or _CAMEL.search(core)
                or (_LETTER.search(core) and _DIGIT.search(core) and not core.isupper())
            ):
                weird += 1
        level = int(10 * weird / len(tokens))
        out.extend(f"__sfx{k}" for k in range(1, level + 1))
    return out


def features(normalized: str, dim: int, max_chars: int = 6000, raw: str | None = None) -> set[int]:
    """Bucket ids of word 1-2-grams, character 4-grams (of normalized text) and shape words."""
    text = normalized[:max_chars]
    words = _WORD.findall(text)
    crc = zlib.crc32
    out: set[int] = set()
    add = out.add
    prev = "<s>"
    for w in words:
        add(crc(w.encode("utf-8", "surrogatepass")) % dim)
        add(crc(f"{prev} {w}".encode("utf-8", "surrogatepass")) % dim)
        prev = w
    padded = f" {text} ".encode("utf-8", "surrogatepass")
    for i in range(len(padded) - 3):
        add(crc(padded[i : i + 4], 0x5EED) % dim)
    if raw is not None:
        for word in shape(raw):
            add(crc(word.encode("utf-8", "surrogatepass")) % dim)
    return out


@dataclass(frozen=True)
class LinearModel:
    """Weights of one hashed-feature logistic regression."""

    name: str
    dim: int
    bias: float
    weights: tuple[float, ...]
    threshold: float
    meta: dict[str, object]

    def probability(self, normalized: str, raw: str | None = None) -> float:
        """P(label 1) for a text given normalized (and raw, when the model uses shape words)."""
        feats = features(normalized, self.dim, raw=raw if self.meta.get("shape") else None)
        if not feats:
            return 1.0 / (1.0 + math.exp(-self.bias))
        w = self.weights
        z = sum(w[i] for i in feats) / math.sqrt(len(feats)) + self.bias
        if z < -30:
            return 0.0
        return 1.0 / (1.0 + math.exp(-z))

    def to_json(self) -> str:
        packed = struct.pack(f"<{self.dim}e", *self.weights)
        return json.dumps(
            {
                "name": self.name,
                "dim": self.dim,
                "bias": self.bias,
                "threshold": self.threshold,
                "meta": self.meta,
                "weights_f16_zlib_b64": base64.b64encode(zlib.compress(packed, 9)).decode(),
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, raw: str) -> LinearModel:
        data = json.loads(raw)
        dim = int(data["dim"])
        packed = zlib.decompress(base64.b64decode(data["weights_f16_zlib_b64"]))
        weights = struct.unpack(f"<{dim}e", packed)
        return cls(
            name=str(data["name"]),
            dim=dim,
            bias=float(data["bias"]),
            weights=weights,
            threshold=float(data["threshold"]),
            meta=dict(data.get("meta") or {}),
        )

    @classmethod
    def from_weights(
        cls, name: str, weights: Iterable[float], bias: float, threshold: float, **meta: object
    ) -> LinearModel:
        w = tuple(float(x) for x in weights)
        # Round through float16 now so the trained model and the shipped one agree.
        w = struct.unpack(f"<{len(w)}e", struct.pack(f"<{len(w)}e", *w))
        return cls(name, len(w), bias, w, threshold, dict(meta))


_cache: dict[str, LinearModel | None] = {}


def shipped(name: str) -> LinearModel | None:
    """The model ``name`` shipped in ``pilothouse/guardrails/models/<name>.json``, if present."""
    if name not in _cache:
        path = resources.files("pilothouse.guardrails") / "models" / f"{name}.json"
        try:
            _cache[name] = LinearModel.from_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            _cache[name] = None
    return _cache[name]


__all__ = ["LinearModel", "features", "shipped"]
