"""Groundedness of answers in retrieved context: lexical support, embeddings, the gateway."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import openai
import pytest

from pilothouse.gateway.plugin import gateway_of
from pilothouse.guardrails import check, embeddings
from pilothouse.guardrails.gateway import context_documents
from pilothouse.guardrails.grounding import content_words, scan_groundedness
from tests.conftest import LiveServer
from tests.gateway.conftest import GatewayFactory, SpanSink, openai_model
from tests.guardrails.upstreams import ScriptedUpstream

CONTEXT = [
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris. It is 330 metres "
    "tall and was designed by the engineering company of Gustave Eiffel.",
    "About seven million people visit the tower every year.",
]
GROUNDED = [
    "The Eiffel Tower was completed in 1889 and is 330 metres tall.",
    "It was designed by Gustave Eiffel's engineering company for the World's Fair.",
    "Sure! About seven million people visit the tower each year.",
]
UNGROUNDED = [
    "The tower was finished in 1925 by Le Corbusier and is painted bright red every spring.",
    "The Great Wall of China is visible from space according to many textbooks.",
    "Its elevators were built by Otis and the top floor hosts a famous jazz club.",
]


def score(answer: str, **options: Any) -> float:
    found = scan_groundedness(answer, "output", {"context": CONTEXT, **options})
    assert len(found) == 1 and found[0].type == "UNGROUNDED"
    return found[0].score


@pytest.mark.parametrize("answer", GROUNDED)
def test_grounded_answers_score_low(answer: str) -> None:
    assert score(answer) < 0.2


@pytest.mark.parametrize("answer", UNGROUNDED)
def test_ungrounded_answers_score_high(answer: str) -> None:
    assert score(answer) > 0.8


def test_a_partly_made_up_answer_scores_its_share() -> None:
    answer = GROUNDED[0] + " " + UNGROUNDED[2]
    value = score(answer)
    assert 0.3 < value < 0.7
    found = scan_groundedness(answer, "output", {"context": CONTEXT})[0]
    assert "unsupported_sentences:1/2" in found.signals


def test_numbers_must_match_exactly() -> None:
    assert score("The Eiffel Tower was completed in 1889.") == 0.0
    assert score("The Eiffel Tower was completed in 1898.") > 0.5


def test_no_context_or_only_small_talk_finds_nothing() -> None:
    assert scan_groundedness(UNGROUNDED[0], "output", {}) == []
    assert scan_groundedness(UNGROUNDED[0], "output", {"context": "  "}) == []
    assert scan_groundedness("Sure, happy to help!", "output", {"context": CONTEXT}) == []


def test_content_words_fold_endings_and_drop_stop_words() -> None:
    assert content_words("The towers were designed, and designing is fun") == [
        "tower",
        "design",
        "design",
        "fun",
    ]


def test_as_a_policy_rule_with_threshold_and_action() -> None:
    policy = {
        "output": [{"check": "groundedness", "action": "block", "options": {"context": CONTEXT}}]
    }
    assert not check(GROUNDED[0], policy, "output").blocked
    decision = check(UNGROUNDED[0], policy, "output")
    assert decision.blocked and decision.blocked_by == "groundedness"
    # threshold 0 with log records the score of every answer
    logged = {"output": [{**policy["output"][0], "action": "log", "threshold": 0}]}
    outcome = check(GROUNDED[1], logged, "output").outcomes[0]
    assert outcome.fired and outcome.score < 0.2


# A deterministic "embedding": concept counts, so paraphrases with no shared words are close.
CONCEPTS = {
    "height": {"tall", "metres", "high", "height", "feet"},
    "paris": {"paris", "french", "capital", "france"},
    "built": {"completed", "finished", "built", "constructed", "erected", "opened"},
    "year": {"1889", "nineteenth", "century"},
    "music": {"jazz", "club", "band"},
}


def concept_embedder(texts: list[str]) -> Sequence[Sequence[float]]:
    out = []
    for text in texts:
        words = set(text.lower().replace(".", " ").replace(",", " ").split())
        out.append([float(len(words & c)) for c in CONCEPTS.values()] + [0.01])
    return out


def test_an_embedding_backend_accepts_paraphrases() -> None:
    paraphrase = "Erected in the nineteenth century, the French landmark stands very high."
    assert score(paraphrase) == 1.0  # no word overlap at all
    with embeddings.using(concept_embedder):
        found = scan_groundedness(paraphrase, "output", {"context": CONTEXT})[0]
        assert found.score == 0.0 and "method:lexical+embedding" in found.signals
        assert score(UNGROUNDED[2]) == 1.0  # still unsupported: nothing about jazz in context


def test_context_documents_of_a_request() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Answer from <context>Doc A</context> only."},
            {"role": "user", "content": [{"type": "text", "text": "<documents>Doc B</documents>"}]},
            {"role": "tool", "tool_call_id": "1", "content": "Doc C"},
            {"role": "user", "content": "no tags here"},
        ]
    }
    assert context_documents(body, ["Doc D", 3]) == ("Doc A", "Doc B", "Doc C", "Doc D")
    assert context_documents({"messages": "x"}, "Doc E") == ("Doc E",)


def test_the_gateway_checks_answers_against_the_request_context(
    make_gateway: GatewayFactory,
) -> None:
    answers = iter([GROUNDED[0], UNGROUNDED[0], UNGROUNDED[1], GROUNDED[0]])
    upstream = ScriptedUpstream(lambda body: next(answers))
    rule = {"check": "groundedness", "action": "block", "threshold": 0.5}
    with LiveServer(upstream) as server:
        models = {"rag": openai_model(server.url)}
        gw = make_gateway(models)
        gw.write_config(
            {
                "models": models,
                "guardrails": {"policies": {"rag": {"output": [rule]}}, "gateway_policy": "rag"},
            }
        )
        assert gateway_of(gw.runtime).source.reload_if_changed()
        sink = SpanSink()
        gw.runtime.traces = sink  # type: ignore[assignment]
        client = gw.client()

        system: Any = {"role": "system", "content": f"<context>{' '.join(CONTEXT)}</context>"}
        question: Any = {"role": "user", "content": "Tell me about the Eiffel Tower."}
        answer = client.chat.completions.create(model="rag", messages=[system, question])
        assert answer.choices[0].message.content == GROUNDED[0]
        recorded = sink.last().attributes["pilothouse.guardrails"]
        assert recorded["context_documents"] == 1

        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="rag", messages=[system, question])
        assert "'groundedness' check fired on the output" in info.value.message

        # Context from metadata; streamed answers are judged once, on the whole text.
        with pytest.raises(openai.APIError):
            list(
                client.chat.completions.create(
                    model="rag",
                    messages=[question],
                    stream=True,
                    extra_body={"metadata": {"context": CONTEXT}},
                )
            )
        # No context at all: nothing to judge, the answer passes.
        assert client.chat.completions.create(model="rag", messages=[question]).choices
