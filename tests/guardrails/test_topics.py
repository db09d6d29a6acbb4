"""Topics: keyword fallback, embedding similarity with a pluggable backend, allow-lists."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from pilothouse.errors import ConfigError
from pilothouse.guardrails import check, embeddings
from pilothouse.guardrails.embeddings import CachedEmbedder, load_embedder
from pilothouse.guardrails.topics import scan_topics

MEDICAL = "Medical diagnosis, symptoms, medication doses and treatment advice"
BILLING = "Invoices, payments, refunds and subscription plans"
# A deterministic "embedding": counts of words per concept, so paraphrases are close.
CONCEPTS = [
    {"medical", "diagnosis", "symptoms", "medication", "doses", "treatment", "fever", "pills",
     "ibuprofen", "headache", "doctor", "take", "sick"},
    {"invoices", "payments", "refunds", "subscription", "plans", "charged", "card", "money",
     "bill", "refund", "invoice"},
    {"weather", "rain", "sunny", "forecast"},
]  # fmt: skip
calls: list[list[str]] = []


def concept_embedder(texts: list[str]) -> Sequence[Sequence[float]]:
    calls.append(texts)
    out = []
    for text in texts:
        words = set(text.lower().replace(",", " ").replace("?", " ").replace(".", " ").split())
        out.append([float(len(words & c)) for c in CONCEPTS] + [0.2])
    return out


def test_keywords_are_the_fallback_without_an_embedder() -> None:
    options = {"deny": {"medical": {"description": MEDICAL, "keywords": ["dosage", "diagnosis"]}}}
    text = "What dosage of ibuprofen for a headache?"
    found = scan_topics(text, "input", options)
    assert [(f.type, text[f.start : f.end], f.score) for f in found] == [("MEDICAL", "dosage", 1.0)]
    assert scan_topics("How many pills for my fever?", "input", options) == []


def test_embedding_similarity_catches_paraphrases() -> None:
    options = {"deny": {"medical": MEDICAL, "billing": BILLING}}
    with embeddings.using(concept_embedder):
        found = scan_topics("How many pills should I take for my fever?", "input", options)
        by_type = {f.type: f.score for f in found}
        assert by_type["MEDICAL"] > 0.5 > by_type["BILLING"]
        assert all(f.signals[-1] == "embedding" for f in found)
        assert scan_topics("Will it rain tomorrow?", "input", options)[0].score < 0.5


def test_as_a_rule_the_threshold_is_the_similarity_that_fires() -> None:
    rule = {"check": "topics", "action": "block", "options": {"deny": {"medical": MEDICAL}}}
    policy = {"input": [rule]}
    with embeddings.using(concept_embedder):
        assert check("I have a headache, which pills?", policy).blocked
        assert not check("Send me the invoice again", policy).blocked
        strict = {"input": [{**rule, "threshold": 0.1}]}
        assert check("Is it sunny? I feel sick", strict).blocked


def test_allow_list_flags_off_topic_text() -> None:
    options = {"allow": {"billing": {"description": BILLING, "keywords": ["invoice"]}}}
    with embeddings.using(concept_embedder):
        assert scan_topics("I was charged twice on my card", "input", options) == []
        found = scan_topics("Write me a poem about the weather forecast", "input", options)
        assert [(f.type, f.signals) for f in found] == [
            ("OFF_TOPIC", ("topic:off_topic", "embedding"))
        ]
    # Without an embedder only the allowed keywords count.
    assert scan_topics("Where is my invoice?", "input", options) == []
    assert scan_topics("I was charged twice", "input", options)[0].type == "OFF_TOPIC"
    assert scan_topics("anything", "input", {"allow": {"billing": BILLING}}) == []


def test_vectors_are_cached_per_text() -> None:
    cached = CachedEmbedder(concept_embedder, "test", size=2)
    calls.clear()
    first = cached(["a fever", "a refund", "a fever"])
    assert first[0] == first[2] and calls == [["a fever", "a refund"]]
    cached(["a refund"])
    assert len(calls) == 1
    cached(["rain", "sunny"])  # evicts the others (size 2)
    cached(["a fever"])
    assert calls[-1] == ["a fever"]


def test_load_embedder_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_embedder("") is None
    (tmp_path / "my_embedder.py").write_text(
        "def embed(texts):\n    return [[float(len(t)), 1.0] for t in texts]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = load_embedder("my_embedder:embed")
    assert loaded is not None and loaded(["abc"]) == [[3.0, 1.0]]
    with pytest.raises(ConfigError, match="cannot be loaded"):
        load_embedder("my_embedder:missing")
    with pytest.raises(ConfigError, match="expected sentence-transformers"):
        load_embedder("word2vec")
    try:
        import sentence_transformers  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"pilothouse\[ml\]"):
            load_embedder("sentence-transformers")


def test_the_sentence_transformers_backend_when_installed() -> None:
    """Runs only where the ml extra is installed (not in CI: torch takes minutes to install)."""
    pytest.importorskip("sentence_transformers")
    with embeddings.using(None):
        embeddings.configure("sentence-transformers")
        options = {"deny": {"medical": MEDICAL, "billing": BILLING}}
        found = {
            f.type: f.score for f in scan_topics("How many pills for my fever?", "input", options)
        }
        assert found["MEDICAL"] > 0.3 > found["BILLING"]
        poem = scan_topics("Write a poem about the sea.", "input", options)
        assert max(f.score for f in poem) < 0.15
