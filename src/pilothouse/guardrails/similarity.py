"""Similarity to known attacks: containment of shipped attack sketches in the input.

Each known attack (a jailbreak template, a DAN prompt...) is reduced to a bottom-k sketch of its
word 4-gram hashes: the k smallest CRC32 values, a uniform sample of its shingles. The share of
an attack's sketch found in the input estimates how much of that attack the input contains,
which catches templates refilled with a new goal. Only hashes ship, never attack text.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from collections.abc import Iterable
from importlib import resources

_WORD = re.compile(r"[a-z0-9']+")
SHINGLE = 4
SKETCH = 24


def shingles(normalized: str, max_chars: int = 20000) -> set[int]:
    words = _WORD.findall(normalized[:max_chars])
    crc = zlib.crc32
    return {
        crc(" ".join(words[i : i + SHINGLE]).encode("utf-8", "surrogatepass"))
        for i in range(len(words) - SHINGLE + 1)
    }


def sketch(normalized: str, k: int = SKETCH) -> list[int]:
    return sorted(shingles(normalized))[:k]


class AttackIndex:
    """Known-attack sketches with an inverted index from shingle hash to attack."""

    def __init__(self, sketches: Iterable[list[int]], min_shingles: int = 8) -> None:
        self.sketches = [list(s) for s in sketches]
        self.sizes: list[int] = []
        self.index: dict[int, list[int]] = {}
        for n, s in enumerate(self.sketches):
            self.sizes.append(len(s))
            for h in s:
                self.index.setdefault(h, []).append(n)
        self.min_shingles = min_shingles

    def similarity(self, normalized: str) -> float:
        """Largest estimated share of one known attack contained in the text (0..1)."""
        found = shingles(normalized)
        if len(found) < self.min_shingles:
            return 0.0
        counts: dict[int, int] = {}
        for h in found:
            for a in self.index.get(h, ()):
                counts[a] = counts.get(a, 0) + 1
        best = 0.0
        for a, c in counts.items():
            if c >= 3:
                best = max(best, c / self.sizes[a])
        return best

    def to_json(self, meta: dict[str, object]) -> str:
        flat: list[int] = []
        for s in self.sketches:
            flat.append(len(s))
            flat.extend(s)
        packed = struct.pack(f"<{len(flat)}I", *flat)
        return json.dumps(
            {
                "meta": meta,
                "sketches_u32_zlib_b64": base64.b64encode(zlib.compress(packed, 9)).decode(),
            }
        )

    @classmethod
    def from_json(cls, raw: str) -> AttackIndex:
        data = json.loads(raw)
        packed = zlib.decompress(base64.b64decode(data["sketches_u32_zlib_b64"]))
        flat = struct.unpack(f"<{len(packed) // 4}I", packed)
        sketches: list[list[int]] = []
        i = 0
        while i < len(flat):
            size = flat[i]
            sketches.append(list(flat[i + 1 : i + 1 + size]))
            i += 1 + size
        return cls(sketches)


_loaded: list[AttackIndex | None] = []


def known_attacks() -> AttackIndex | None:
    """The shipped index (``models/known_attacks.json``), or None when not shipped."""
    if not _loaded:
        path = resources.files("pilothouse.guardrails") / "models" / "known_attacks.json"
        try:
            _loaded.append(AttackIndex.from_json(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            _loaded.append(None)
    return _loaded[0]


__all__ = ["AttackIndex", "known_attacks", "shingles", "sketch"]
