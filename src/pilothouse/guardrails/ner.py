"""Optional person-name recognition for the ``pii`` check, through a NER backend.

Names have no pattern, so the built-in ``pii`` check finds none on its own. With a recognizer
configured, its ``PERSON`` entities become ``PERSON`` findings (redactable and pseudonymizable
like any PII span). Configure one under ``guardrails: {ner: ...}`` in ``pilothouse.yaml``:

- ``spacy`` (or ``spacy:<model>``, default ``en_core_web_sm``): spaCy with that model
  installed (``pip install spacy`` and the model package);
- ``package.module:function``: any function ``text -> [(start, end, label, score)]``, for
  example a wrapper of Presidio's ``AnalyzerEngine``;

or in Python with ``RECOGNIZER.set(func)``. Labels ``PERSON``/``PER`` count; others are
ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pilothouse.errors import ConfigError
from pilothouse.guardrails.backends import Backend, load_reference
from pilothouse.guardrails.model import Finding

Entity = tuple[int, int, str, float]
Recognizer = Callable[[str], Sequence[Entity]]
DEFAULT_MODEL = "en_core_web_sm"
PERSON_LABELS = frozenset({"PERSON", "PER"})
#: Longest text given to the recognizer (NER models are slow on long inputs).
MAX_CHARS = 20_000


def _spacy(model: str) -> Recognizer:
    try:
        import spacy  # type: ignore[import-not-found]

        nlp = spacy.load(model, disable=["parser", "lemmatizer", "textcat"])
    except (ImportError, OSError) as exc:
        raise ConfigError(
            f"guardrails.ner: spaCy with the model {model!r} is needed ({exc})"
        ) from None

    def recognize(text: str) -> Sequence[Entity]:
        return [(e.start_char, e.end_char, e.label_, 0.85) for e in nlp(text).ents]

    return recognize


def load_recognizer(spec: str) -> Recognizer:
    """The recognizer a ``guardrails.ner`` value names."""
    kind, _, model = spec.partition(":")
    if kind == "spacy":
        return _spacy(model or DEFAULT_MODEL)
    found: Any = load_reference("guardrails.ner", spec)
    recognizer: Recognizer = found
    return recognizer


RECOGNIZER: Backend[Recognizer] = Backend("guardrails.ner", load_recognizer)


def person_findings(text: str, check: str) -> list[Finding]:
    """``PERSON`` findings of the configured recognizer (none without one)."""
    recognize = RECOGNIZER.get()
    if recognize is None or not text.strip():
        return []
    out: list[Finding] = []
    limit = min(len(text), MAX_CHARS)
    for start, end, label, score in recognize(text[:MAX_CHARS]):
        if label in PERSON_LABELS and 0 <= start < end <= limit:
            out.append(
                Finding(
                    check, "PERSON", start, end, max(0.0, min(1.0, float(score))), ("person:ner",)
                )
            )
    return out


__all__ = ["RECOGNIZER", "Recognizer", "load_recognizer", "person_findings"]
