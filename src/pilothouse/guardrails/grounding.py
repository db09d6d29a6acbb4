"""Groundedness of an answer in the context it was given: a cheap hallucination signal for RAG.

The answer is split into sentences. A sentence is *supported* when enough of its content words
(stop words dropped, plurals and -ing/-ed folded, numbers kept exactly) and of its word pairs
appear in the context: ``support = (unigram recall + bigram recall) / 2 >= min_support``,
halved when the sentence has a number the context does not contain. With
an embedding backend configured (:mod:`pilothouse.guardrails.embeddings`) a sentence also
counts as supported when its cosine similarity to some context sentence reaches
``min_similarity``, which catches paraphrases. Sentences with fewer than ``min_words``
content words ("Sure!", "Hope this helps.") are neutral.

The finding's score is the share of the answer's content words in unsupported sentences: 0 for
an answer fully backed by the context, 1 for one the context says nothing about. Without
context (``options.context``, a string or list of strings; the gateway fills it from the
request, see docs/guardrails.md) there is nothing to judge and the check finds nothing.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pilothouse.guardrails import embeddings
from pilothouse.guardrails.model import Finding, Where

_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+(?=\s|$)|\n|$)|[^\n]+")
_WORD = re.compile(r"[^\W_]+(?:[.,'][^\W_]+)*", re.UNICODE)
_STOP = (
    "a an the and or but if then so of to in on at by for with from as into onto about over "
    "under is are was were be been being am do does did done have has had having it its this "
    "that these those there here what which who whom whose when where why how not no nor yes "
    "i me my we our you your he him his she her they them their can could would should will "
    "shall may might must also just only very too more most some any all each both such than "
    "up down out off again further once per via while because until although though yet "
    "according based said says say one "
    # small talk that needs no support
    "sure happy glad help helps hope thank thanks please let know certainly course great "
)
STOP_WORDS = frozenset(_STOP.split())
MAX_CONTEXT_CHARS = 200_000
MAX_EMBEDDED_SENTENCES = 256


def _fold(word: str) -> str:
    """Lower-case and fold common English endings, so 'founded' matches 'founding'."""
    w = word.lower().replace("'s", "")
    if w.isdigit() or len(w) <= 3:
        return w
    for suffix in ("ing", "ed", "es", "s"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3 and not w.endswith("ss"):
            return w[: -len(suffix)]
    return w


def content_words(text: str) -> list[str]:
    """Folded words of ``text`` without stop words, in order."""
    return [_fold(w) for w in _WORD.findall(text) if w.lower() not in STOP_WORDS]


def sentences(text: str) -> Iterator[tuple[int, int]]:
    """Offsets of the sentences (or lines) of ``text``, blanks skipped."""
    for m in _SENTENCE.finditer(text):
        if m.group(0).strip():
            yield m.start(), m.end()


def _context_texts(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, Sequence):
        return [str(item) for item in raw if isinstance(item, str | int | float)]
    return []


def support(words: list[str], unigrams: set[str], bigrams: set[tuple[str, str]]) -> float:
    """Share of a sentence's content words, and word pairs, found in the context (mean)."""
    if not words:
        return 1.0
    uni = sum(w in unigrams for w in words) / len(words)
    pairs = list(itertools.pairwise(words))
    if not pairs:
        return uni
    bi = sum(p in bigrams for p in pairs) / len(pairs)
    value = (uni + bi) / 2
    # A number the context does not state is the typical made-up fact: halve the support.
    if any(any(c.isdigit() for c in w) and w not in unigrams for w in words):
        value /= 2
    return value


def scan_groundedness(text: str, where: Where, options: Mapping[str, Any]) -> list[Finding]:
    """One finding over the answer: score = share of it not supported by ``options.context``."""
    context = "\n".join(_context_texts(options.get("context")))[:MAX_CONTEXT_CHARS]
    if not context.strip():
        return []
    min_support = float(options.get("min_support", 0.5))
    min_words = int(options.get("min_words", 3))
    context_words = content_words(context)
    unigrams = set(context_words)
    bigrams = set(itertools.pairwise(context_words))
    judged: list[tuple[str, int, float]] = []  # sentence, weight, lexical support
    for start, end in sentences(text):
        words = content_words(text[start:end])
        if len(words) >= min_words:
            judged.append((text[start:end], len(words), support(words, unigrams, bigrams)))
    if not judged:
        return []
    supported = [s >= min_support for _, _, s in judged]
    method = "lexical"
    if embeddings.current() is not None and not all(supported):
        method = "lexical+embedding"
        min_similarity = float(options.get("min_similarity", 0.6))
        pieces = [context[a:b] for a, b in sentences(context)][:MAX_EMBEDDED_SENTENCES]
        doubtful = [i for i, ok in enumerate(supported) if not ok]
        vectors = embeddings.embed([judged[i][0] for i in doubtful] + pieces) or []
        answer_vectors, context_vectors = vectors[: len(doubtful)], vectors[len(doubtful) :]
        for i, vector in zip(doubtful, answer_vectors, strict=True):
            best = max((embeddings.cosine(vector, c) for c in context_vectors), default=0.0)
            supported[i] = best >= min_similarity
    total = sum(weight for _, weight, _ in judged)
    unsupported = sum(w for (_, w, _), ok in zip(judged, supported, strict=True) if not ok)
    score = unsupported / total
    signals = (
        f"unsupported_sentences:{supported.count(False)}/{len(supported)}",
        f"method:{method}",
    )
    return [Finding("groundedness", "UNGROUNDED", 0, len(text), round(score, 4), signals)]


__all__ = ["content_words", "scan_groundedness", "sentences", "support"]
