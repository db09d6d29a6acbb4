"""Denied and allowed topics: embedding similarity to topic descriptions, keywords as fallback.

Options of the ``topics`` check::

    deny:                       # fire when the text is about one of these
      medical:
        description: Medical diagnosis, symptoms, medication doses and treatment advice
        keywords: [diagnosis, dosage, prescription]
      legal: Legal advice about lawsuits, contracts and liability   # description only
    allow:                      # optional: fire (OFF_TOPIC) when the text is about none of these
      billing: Invoices, payments, refunds and subscription plans
    min_similarity: 0.3         # for allow: below this similarity to every allowed topic

With an embedding backend (:mod:`pilothouse.guardrails.embeddings`), a denied topic's finding
scores the highest cosine similarity between its description and one of the text's first
sentences, so the rule's ``threshold`` is the similarity that fires. Keywords always match as
exact spans (score 1); without a backend they are the only signal, and a topic with no
keywords cannot fire.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pilothouse.guardrails import embeddings
from pilothouse.guardrails.content import word_spans
from pilothouse.guardrails.grounding import sentences
from pilothouse.guardrails.model import Finding, Where

#: Sentences of the text compared one by one (the first ones, within MAX_CHARS).
MAX_SENTENCES = 8
MAX_CHARS = 2000


def _topics(raw: Any) -> dict[str, tuple[str, tuple[str, ...]]]:
    """name -> (description, keywords), from the loose option forms."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    if not isinstance(raw, Mapping):
        return out
    for name, spec in raw.items():
        if isinstance(spec, str):
            out[str(name).upper()] = (spec, ())
        elif isinstance(spec, Mapping):
            words = spec.get("keywords") or ()
            keywords = (
                tuple(str(w) for w in words if str(w).strip()) if isinstance(words, list) else ()
            )
            out[str(name).upper()] = (str(spec.get("description") or ""), keywords)
        elif isinstance(spec, list):
            out[str(name).upper()] = ("", tuple(str(w) for w in spec if str(w).strip()))
    return out


def _similarities(text: str, descriptions: list[str]) -> list[float] | None:
    """Per description, the best cosine similarity to one of the text's sentences."""
    if embeddings.current() is None or not descriptions or not text.strip():
        return None
    parts = [text[a:b] for a, b in sentences(text[:MAX_CHARS])][:MAX_SENTENCES] or [text]
    vectors = embeddings.embed(descriptions + parts) or []
    topic_vectors, text_vectors = vectors[: len(descriptions)], vectors[len(descriptions) :]
    return [
        max(0.0, min(1.0, max(embeddings.cosine(t, p) for p in text_vectors)))
        for t in topic_vectors
    ]


def scan_topics(text: str, where: Where, options: Mapping[str, Any]) -> list[Finding]:
    """Denied topics found (spans for keywords, the whole text for similarity); OFF_TOPIC when
    an allow-list is given and the text is about none of its topics."""
    deny, allow = _topics(options.get("deny")), _topics(options.get("allow"))
    out: list[Finding] = []
    described = [name for name, (description, _) in deny.items() if description]
    similar = _similarities(text, [deny[n][0] for n in described])
    for name, (_, keywords) in deny.items():
        signal = f"topic:{name.lower()}"
        out.extend(
            Finding("topics", name, a, b, 1.0, (signal, "keyword"))
            for a, b in word_spans(text, keywords)
        )
    for name, score in zip(described, similar or (), strict=False):
        out.append(
            Finding(
                "topics",
                name,
                0,
                len(text),
                round(score, 4),
                (f"topic:{name.lower()}", "embedding"),
            )
        )
    if allow and text.strip():
        allowed = [name for name, (description, _) in allow.items() if description]
        best = _similarities(text, [allow[n][0] for n in allowed])
        on_topic = any(word_spans(text, kw) for _, kw in allow.values())
        if best is not None:
            on_topic = on_topic or max(best, default=0.0) >= float(
                options.get("min_similarity", 0.3)
            )
            method = "embedding"
        else:
            method = "keyword"
        if not on_topic and (best is not None or any(kw for _, kw in allow.values())):
            out.append(
                Finding("topics", "OFF_TOPIC", 0, len(text), 1.0, ("topic:off_topic", method))
            )
    return out


__all__ = ["scan_topics"]
