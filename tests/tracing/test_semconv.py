"""Semantic-convention mapping: OTel GenAI (current, deprecated, events) and OpenInference."""

from __future__ import annotations

from typing import Any

import orjson

from pilothouse.tracing.model import Span
from pilothouse.tracing.semconv import normalize


def span(attributes: dict[str, Any], **fields: Any) -> Span:
    base: dict[str, Any] = {
        "project_id": 1,
        "trace_id": "a" * 32,
        "span_id": "b" * 16,
        "name": "s",
        "start_time_ns": 1_000_000_000,
        "end_time_ns": 2_000_000_000,
        "attributes": attributes,
    }
    base.update(fields)
    return normalize(Span(**base))


def test_current_genai_names():
    s = span(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4",
            "gen_ai.response.model": "claude-sonnet-4-20250514",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 5,
            "gen_ai.system_instructions": orjson.dumps(
                [{"type": "text", "content": "Be brief."}]
            ).decode(),
            "gen_ai.input.messages": orjson.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]
            ).decode(),
            "gen_ai.output.messages": orjson.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": "Hello"}],
                        "finish_reason": "stop",
                    }
                ]
            ).decode(),
            "gen_ai.conversation.id": "conv-9",
        },
        resource={"service.name": "bot", "deployment.environment.name": "prod"},
    )
    assert s.operation == "chat"
    assert s.provider == "anthropic"
    assert (s.request_model, s.response_model) == ("claude-sonnet-4", "claude-sonnet-4-20250514")
    assert (s.input_tokens, s.output_tokens) == (10, 5)
    assert s.input == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert s.output == [{"role": "assistant", "content": "Hello", "finish_reason": "stop"}]
    assert s.session_id == "conv-9"
    assert (s.service_name, s.environment) == ("bot", "prod")


def test_deprecated_genai_names_and_indexed_prompts():
    s = span(
        {
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.prompt_tokens": 7,
            "gen_ai.usage.completion_tokens": 3,
            "gen_ai.prompt.0.role": "system",
            "gen_ai.prompt.0.content": "You are terse.",
            "gen_ai.prompt.1.role": "user",
            "gen_ai.prompt.1.content": "2+2?",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "4",
        }
    )
    assert s.provider == "openai"
    assert (s.input_tokens, s.output_tokens) == (7, 3)
    assert s.input == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "2+2?"},
    ]
    assert s.output == [{"role": "assistant", "content": "4"}]


def test_deprecated_prompt_and_completion_strings():
    s = span({"gen_ai.prompt": "plain prompt", "gen_ai.completion": "plain answer"})
    assert (s.input, s.output) == ("plain prompt", "plain answer")


def test_event_based_messages():
    events = [
        {"name": "gen_ai.system.message", "time_ns": 1, "attributes": {"content": "sys"}},
        {
            "name": "gen_ai.user.message",
            "time_ns": 2,
            "attributes": {"body": orjson.dumps({"content": "question"}).decode()},
        },
        {
            "name": "gen_ai.choice",
            "time_ns": 3,
            "attributes": {
                "body": orjson.dumps(
                    {"index": 0, "message": {"content": "answer"}, "finish_reason": "stop"}
                ).decode()
            },
        },
    ]
    s = span({"gen_ai.operation.name": "chat"}, events=events)
    assert s.input == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "question"},
    ]
    assert s.output == [{"role": "assistant", "content": "answer"}]


def test_inference_details_event():
    details = {
        "name": "gen_ai.client.inference.operation.details",
        "time_ns": 5,
        "attributes": {
            "gen_ai.input.messages": [
                {"role": "user", "parts": [{"type": "text", "content": "q"}]}
            ],
            "gen_ai.output.messages": [
                {"role": "assistant", "parts": [{"type": "text", "content": "a"}]}
            ],
        },
    }
    s = span({}, events=[details])
    assert s.input == [{"role": "user", "content": "q"}]
    assert s.output == [{"role": "assistant", "content": "a"}]


def test_openinference_llm_span():
    s = span(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-4o-mini",
            "llm.provider": "openai",
            "llm.token_count.prompt": 500,
            "llm.token_count.completion": 120,
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "be nice",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.contents.0.message_content.type": "text",
            "llm.input_messages.1.message.contents.0.message_content.text": "hello",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"id": 4}',
            "llm.prompt_template.version": "3",
            "session.id": "sess",
            "user.id": "u1",
            "tag.tags": ["x", "y"],
            "metadata": '{"team": "search"}',
        }
    )
    assert s.operation == "chat"
    assert (s.request_model, s.response_model, s.provider) == ("gpt-4o-mini",) * 2 + ("openai",)
    assert (s.input_tokens, s.output_tokens) == (500, 120)
    assert s.input == [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "hello"},
    ]
    assert s.output == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"name": "lookup", "arguments": {"id": 4}}],
        }
    ]
    assert (s.session_id, s.user_id, s.tags, s.prompt_version) == ("sess", "u1", ["x", "y"], 3)
    assert s.attributes["metadata"] == '{"team": "search"}'  # kept verbatim


def test_openinference_retriever_and_chain_spans():
    retriever = span(
        {
            "openinference.span.kind": "RETRIEVER",
            "input.value": "refund policy",
            "retrieval.documents.0.document.id": "d1",
            "retrieval.documents.0.document.content": "Refunds within 30 days.",
            "retrieval.documents.0.document.score": 0.92,
            "retrieval.documents.1.document.id": "d2",
            "retrieval.documents.1.document.content": "Shipping is free.",
            "retrieval.documents.1.document.metadata": '{"source": "faq"}',
        }
    )
    assert retriever.operation == "retrieval"
    assert retriever.input == "refund policy"
    assert retriever.output == [
        {"id": "d1", "content": "Refunds within 30 days.", "score": 0.92},
        {"id": "d2", "content": "Shipping is free.", "metadata": {"source": "faq"}},
    ]
    chain = span(
        {
            "openinference.span.kind": "CHAIN",
            "input.value": '{"question": "q"}',
            "input.mime_type": "application/json",
            "output.value": "done",
        }
    )
    assert chain.operation == "chain"
    assert chain.input == {"question": "q"}
    assert chain.output == "done"
    for kind, operation in [("TOOL", "tool"), ("AGENT", "agent"), ("EMBEDDING", "embeddings")]:
        assert span({"openinference.span.kind": kind}).operation == operation


def test_producer_values_are_kept_and_cost_is_read_or_left_unknown():
    s = span(
        {"gen_ai.request.model": "other", "gen_ai.usage.cost": 0.25},
        request_model="mine",
        user_id="kept",
    )
    assert s.request_model == "mine" and s.user_id == "kept"
    assert s.cost_usd == 0.25
    unknown = span(
        {
            "gen_ai.provider.name": "nobody-knows",
            "gen_ai.request.model": "mystery-1",
            "gen_ai.usage.input_tokens": 5,
        }
    )
    assert unknown.cost_usd is None


def test_ttft_and_tags_as_a_comma_separated_string():
    s = span({"gen_ai.server.time_to_first_token": 0.25, "langfuse.trace.tags": "a, b"})
    assert s.ttft_ms == 250.0
    assert s.tags == ["a", "b"]


def test_the_first_key_with_a_value_wins_whatever_spans_came_before():
    # Spans with the same well-known keys share a lookup plan; their values still decide.
    both = {"gen_ai.provider.name": "anthropic", "gen_ai.system": "openai"}
    assert span(both).provider == "anthropic"
    assert span({**both, "gen_ai.provider.name": ""}).provider == "openai"
    milliseconds = span({"pilothouse.ttft_ms": 80, "gen_ai.server.time_to_first_token": 0.25})
    assert milliseconds.ttft_ms == 80.0
    assert span({"gen_ai.server.time_to_first_token": 0.25}, ttft_ms=5.0).ttft_ms == 5.0
    assert span({"user.id": "u1"}, tags=["kept"]).tags == ["kept"]


def test_cost_is_computed_from_the_gateway_price_table():
    s = span(
        {
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 1_000_000,
            "gen_ai.usage.output_tokens": 1_000_000,
        }
    )
    assert s.cost_usd is not None and s.cost_usd > 0
