"""Semantic conventions -> the normalized columns of :class:`~pilothouse.tracing.model.Span`.

Two vocabularies are understood, and the first one present wins for each column:

- OpenTelemetry GenAI (``gen_ai.*``): current names (``gen_ai.provider.name``,
  ``gen_ai.input.messages``, ``gen_ai.system_instructions``...), the deprecated ones
  (``gen_ai.system``, ``gen_ai.prompt``/``gen_ai.completion`` and their indexed
  ``gen_ai.prompt.0.role`` form, ``gen_ai.usage.prompt_tokens``) and the event-based form
  (``gen_ai.user.message``, ``gen_ai.choice``... events and
  ``gen_ai.client.inference.operation.details``).
- OpenInference (``openinference.span.kind``, ``llm.*``, ``input.value``/``output.value``,
  flattened ``llm.input_messages.N.message.role``, ``retrieval.documents.N.document.*``,
  ``session.id``, ``user.id``, ``metadata``, ``tag.tags``).

Columns already set by the producer (the gateway fills them itself) are kept. Attributes are
never removed: unknown ones stay verbatim in ``Span.attributes``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import orjson

from pilothouse.tracing.model import Span

log = logging.getLogger(__name__)

#: ``gen_ai.operation.name`` -> normalized operation
GENAI_OPERATIONS = {
    "chat": "chat",
    "generate_content": "chat",
    "text_completion": "completion",
    "embeddings": "embeddings",
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
    "invoke_workflow": "chain",
}

#: ``openinference.span.kind`` -> normalized operation
OPENINFERENCE_KINDS = {
    "LLM": "chat",
    "EMBEDDING": "embeddings",
    "RETRIEVER": "retrieval",
    "RERANKER": "rerank",
    "TOOL": "tool",
    "AGENT": "agent",
    "CHAIN": "chain",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluator",
    "PROMPT": "prompt",
}

PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
REQUEST_MODEL_KEYS = ("gen_ai.request.model", "llm.model_name", "embedding.model_name")
RESPONSE_MODEL_KEYS = ("gen_ai.response.model", "llm.model_name", "embedding.model_name")
INPUT_TOKEN_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
)
OUTPUT_TOKEN_KEYS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
)
COST_KEYS = ("gen_ai.usage.cost", "llm.cost.total", "pilothouse.cost_usd")
SESSION_KEYS = ("session.id", "gen_ai.conversation.id", "langfuse.session.id")
USER_KEYS = ("user.id", "enduser.id", "langfuse.user.id")
TAG_KEYS = ("tag.tags", "langfuse.trace.tags", "pilothouse.tags")
PROMPT_NAME_KEYS = ("pilothouse.prompt.name", "langfuse.prompt.name", "gen_ai.prompt.name")
PROMPT_VERSION_KEYS = (
    "pilothouse.prompt.version",
    "langfuse.prompt.version",
    "llm.prompt_template.version",
)
TTFT_MS_KEYS = ("pilothouse.ttft_ms", "gen_ai.response.time_to_first_token_ms")
TTFT_S_KEYS = ("gen_ai.server.time_to_first_token", "gen_ai.response.time_to_first_chunk")
ENVIRONMENT_KEYS = ("deployment.environment.name", "deployment.environment", "langfuse.environment")
RELEASE_KEYS = ("service.version", "langfuse.release")

_KNOWN = frozenset(
    PROVIDER_KEYS
    + REQUEST_MODEL_KEYS
    + RESPONSE_MODEL_KEYS
    + INPUT_TOKEN_KEYS
    + OUTPUT_TOKEN_KEYS
    + COST_KEYS
    + SESSION_KEYS
    + USER_KEYS
    + TAG_KEYS
    + PROMPT_NAME_KEYS
    + PROMPT_VERSION_KEYS
    + TTFT_MS_KEYS
    + TTFT_S_KEYS
    + ENVIRONMENT_KEYS
    + RELEASE_KEYS
)

#: Event names of the event-based GenAI form, and the role each carries.
MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def _first(attrs: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            return value
    return None


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _maybe_json(value: Any) -> Any:
    """JSON text decoded when it looks like JSON; anything else unchanged."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _parts_text(parts: Any) -> Any:
    """GenAI ``parts`` ([{type: text, content}...]) as text when they are all text."""
    if not isinstance(parts, list):
        return parts
    texts = []
    for part in parts:
        if isinstance(part, dict) and part.get("type") == "text":
            texts.append(str(part.get("content", "")))
        else:
            return parts
    return "\n".join(texts)


def _message(raw: Any) -> dict[str, Any]:
    """One chat message in the common shape ``{role, content[, tool_calls, ...]}``."""
    if not isinstance(raw, dict):
        return {"role": "user", "content": raw}
    out = dict(raw)
    if "parts" in out and "content" not in out:
        out["content"] = _parts_text(out.pop("parts"))
    out.setdefault("role", "user")
    return out


def _messages(value: Any) -> Any:
    value = _maybe_json(value)
    if isinstance(value, list):
        return [_message(m) for m in value]
    if isinstance(value, dict) and isinstance(value.get("messages"), list):
        return [_message(m) for m in value["messages"]]
    return value


def _indexed(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """``prefix.N.rest`` attributes grouped as a list of dicts keyed by ``rest``."""
    items: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        index, _, rest = key[len(prefix) :].partition(".")
        if index.isdigit() and rest:
            items.setdefault(int(index), {})[rest] = value
    return [items[i] for i in sorted(items)]


#: An indexed key (``prefix.N.rest``) somewhere in newline-joined attribute keys.
_INDEXED_KEY = re.compile(r"\.[0-9]+\.")


def _roots(attrs: dict[str, Any]) -> set[str]:
    """The first two dotted segments of every indexed key (``llm.input_messages`` ...).

    Only flattened lists (``prefix.N.rest``) are looked up by root, so a span without any
    (most spans) is answered by one regular expression search over its joined keys.
    """
    out: set[str] = set()
    if _INDEXED_KEY.search("\n".join(attrs)) is None:
        return out
    for key in attrs:
        first = key.find(".")
        second = key.find(".", first + 1) if first >= 0 else -1
        out.add(key[:second] if second > 0 else key)
    return out


def _openinference_messages(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]] | None:
    flat = _indexed(attrs, prefix)
    if not flat:
        return None
    out = []
    for item in flat:
        message: dict[str, Any] = {"role": item.get("message.role", "user")}
        content = item.get("message.content")
        if content is None:
            texts = [v for k, v in sorted(item.items()) if k.endswith("message_content.text") and v]
            content = "\n".join(map(str, texts)) if texts else None
        message["content"] = content
        calls = _indexed(
            {k[len("message.") :]: v for k, v in item.items() if k.startswith("message.")},
            "tool_calls.",
        )
        if calls:
            message["tool_calls"] = [
                {
                    "name": c.get("tool_call.function.name"),
                    "arguments": _maybe_json(c.get("tool_call.function.arguments")),
                }
                for c in calls
            ]
        out.append(message)
    return out


def _genai_indexed_messages(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]] | None:
    # The older OpenLLMetry form: gen_ai.prompt.0.role, gen_ai.prompt.0.content.
    flat = _indexed(attrs, prefix)
    if not flat:
        return None
    return [{"role": m.get("role", "user"), "content": m.get("content")} for m in flat]


def _documents(attrs: dict[str, Any]) -> list[dict[str, Any]] | None:
    flat = _indexed(attrs, "retrieval.documents.")
    if not flat:
        return None
    docs = []
    for item in flat:
        doc = {k.removeprefix("document."): v for k, v in item.items()}
        if "metadata" in doc:
            doc["metadata"] = _maybe_json(doc["metadata"])
        docs.append(doc)
    return docs


def _event_messages(span: Span) -> tuple[list[dict[str, Any]] | None, Any]:
    """Input and output messages carried by GenAI events, if any."""
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    details_in: Any = None
    details_out: Any = None
    for event in span.events:
        name = event.get("name")
        attrs = event.get("attributes") or {}
        if name in MESSAGE_EVENTS:
            body = _maybe_json(attrs.get("body", attrs.get("gen_ai.event.content")))
            if isinstance(body, dict):
                message = _message({"role": MESSAGE_EVENTS[name], **body})
            else:
                message = {"role": MESSAGE_EVENTS[name], "content": attrs.get("content", body)}
            inputs.append(message)
        elif name == "gen_ai.choice":
            body = _maybe_json(attrs.get("body", attrs.get("gen_ai.event.content")))
            message = body.get("message", body) if isinstance(body, dict) else {"content": body}
            outputs.append(_message({"role": "assistant", **message}))
        elif name == "gen_ai.client.inference.operation.details":
            details_in = attrs.get("gen_ai.input.messages", details_in)
            details_out = attrs.get("gen_ai.output.messages", details_out)
        elif name in ("gen_ai.content.prompt", "gen_ai.content.completion"):
            key = "gen_ai.prompt" if name.endswith("prompt") else "gen_ai.completion"
            if name.endswith("prompt"):
                details_in = attrs.get(key, details_in)
            else:
                details_out = attrs.get(key, details_out)
    if details_in is not None and not inputs:
        decoded = _messages(details_in)
        inputs = decoded if isinstance(decoded, list) else []
    output: Any = outputs or (_messages(details_out) if details_out is not None else None)
    return inputs or None, output


def _input(span: Span, attrs: dict[str, Any], roots: set[str]) -> Any:
    value = attrs.get("gen_ai.input.messages")
    if value is not None:
        messages = _messages(value)
        instructions = _maybe_json(attrs.get("gen_ai.system_instructions"))
        if instructions is not None and isinstance(messages, list):
            messages = [{"role": "system", "content": _parts_text(instructions)}, *messages]
        return messages
    found = None
    if "llm.input_messages" in roots:
        found = _openinference_messages(attrs, "llm.input_messages.")
    if found is None and "gen_ai.prompt" in roots:
        found = _genai_indexed_messages(attrs, "gen_ai.prompt.")
    if found is not None:
        return found
    if "gen_ai.prompt" in attrs:
        return _messages(attrs["gen_ai.prompt"])
    if "input.value" in attrs:
        return _value(attrs["input.value"], attrs.get("input.mime_type"))
    if not span.events:
        return None
    events_in, _ = _event_messages(span)
    return events_in


def _output(span: Span, attrs: dict[str, Any], roots: set[str]) -> Any:
    value = attrs.get("gen_ai.output.messages")
    if value is not None:
        return _messages(value)
    found = None
    if "llm.output_messages" in roots:
        found = _openinference_messages(attrs, "llm.output_messages.")
    if found is None and "gen_ai.completion" in roots:
        found = _genai_indexed_messages(attrs, "gen_ai.completion.")
    if found is not None:
        return found
    if "gen_ai.completion" in attrs:
        return _messages(attrs["gen_ai.completion"])
    documents = _documents(attrs) if "retrieval.documents" in roots else None
    if documents is not None:
        return documents
    if "output.value" in attrs:
        return _value(attrs["output.value"], attrs.get("output.mime_type"))
    if not span.events:
        return None
    _, events_out = _event_messages(span)
    return events_out


def _value(value: Any, mime_type: Any) -> Any:
    if mime_type == "application/json":
        return _maybe_json(value)
    return value


def _tags(value: Any) -> list[str]:
    value = _maybe_json(value)
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v is not None and v != ""]
    if isinstance(value, str) and value:
        return [t.strip() for t in value.split(",") if t.strip()]
    return []


def _operation(span: Span, attrs: dict[str, Any]) -> str | None:
    name = attrs.get("gen_ai.operation.name")
    if isinstance(name, str) and name:
        return GENAI_OPERATIONS.get(name, name)
    kind = attrs.get("openinference.span.kind")
    if isinstance(kind, str) and kind:
        return OPENINFERENCE_KINDS.get(kind.upper(), kind.lower())
    if "retrieval.documents" in attrs or "retrieval.documents.0.document.content" in attrs:
        return "retrieval"
    return None


#: The price function of the gateway (``pilothouse.gateway.cost.price``), if installed.
PriceFn = Callable[[str, str, int, int], float | None]


def _load_price() -> PriceFn | None:
    try:
        from pilothouse.gateway.cost import price
    except ImportError:
        return None
    return price


_price: PriceFn | None = _load_price()


def cost_of(
    provider: str | None, model: str | None, tokens_in: int, tokens_out: int
) -> float | None:
    """USD cost from the gateway's price table, or None when unknown or not installed."""
    if _price is None or not provider or not model:
        return None
    try:
        return _price(provider, model, tokens_in, tokens_out)
    except (ArithmeticError, LookupError, TypeError, ValueError):  # a bad price entry
        log.warning("no price for %s/%s", provider, model, exc_info=True)
        return None


def normalize(span: Span) -> Span:
    """Fill the span's normalized columns from its attributes, events and resource."""
    attrs = span.attributes
    if span.operation is None:
        span.operation = _operation(span, attrs)
    # One set intersection (in C) tells which conventions the span uses at all: most spans
    # of an agent (retrievals, tools, chains) use none and skip the lookups below.
    known = _KNOWN.intersection(attrs)
    if known:
        _normalize_known(span, attrs, known)
    if span.input is None or span.output is None:
        roots = _roots(attrs)
        if span.input is None:
            span.input = _input(span, attrs, roots)
        if span.output is None:
            span.output = _output(span, attrs, roots)
    if span.ttft_ms is None and span.events:
        for event in span.events:
            if event.get("name") in ("gen_ai.first_token", "first_token", "First Token"):
                at = int(event.get("time_ns", span.start_time_ns))
                span.ttft_ms = (at - span.start_time_ns) / 1e6
                break
    resource = span.resource
    if resource:
        if span.environment is None:
            span.environment = _str(_first(resource, ENVIRONMENT_KEYS))
        if span.release is None:
            span.release = _str(_first(resource, RELEASE_KEYS))
        if span.service_name is None:
            span.service_name = _str(resource.get("service.name"))
    return span


def _seconds_as_ms(value: Any) -> float | None:
    seconds = _float(value)
    return seconds * 1000 if seconds is not None else None


Plan = tuple[tuple[str, tuple[str, ...], Callable[[Any], Any]], ...]
#: The columns read from well-known attributes: (column, keys, conversion), in the order they
#: are filled; a column listed twice takes the second group only when the first gave nothing.
_COLUMNS: Plan = (
    ("provider", PROVIDER_KEYS, _str),
    ("request_model", REQUEST_MODEL_KEYS, _str),
    ("response_model", RESPONSE_MODEL_KEYS, _str),
    ("input_tokens", INPUT_TOKEN_KEYS, _int),
    ("output_tokens", OUTPUT_TOKEN_KEYS, _int),
    ("cost_usd", COST_KEYS, _float),
    ("ttft_ms", TTFT_MS_KEYS, _float),
    ("ttft_ms", TTFT_S_KEYS, _seconds_as_ms),
    ("session_id", SESSION_KEYS, _str),
    ("user_id", USER_KEYS, _str),
    ("prompt_name", PROMPT_NAME_KEYS, _str),
    ("prompt_version", PROMPT_VERSION_KEYS, _int),
    ("environment", ENVIRONMENT_KEYS, _str),
    ("release", RELEASE_KEYS, _str),
)
#: The columns each set of well-known attributes present can fill (spans of one
#: instrumentation share a few such sets), so a span looks only at the columns it can fill.
_plans: dict[frozenset[str], Plan] = {}


def _plan(known: frozenset[str]) -> Plan:
    plan = _plans.get(known)
    if plan is None:
        if len(_plans) > 1000:
            _plans.clear()
        plan = _plans[known] = tuple(c for c in _COLUMNS if not known.isdisjoint(c[1]))
    return plan


def _normalize_known(span: Span, attrs: dict[str, Any], known: frozenset[str]) -> None:
    """The columns read from the well-known attributes present (``known``)."""
    for column, keys, convert in _plan(known):
        if getattr(span, column) is None:
            setattr(span, column, convert(_first(attrs, keys)))
    if span.cost_usd is None and (span.input_tokens or span.output_tokens):
        span.cost_usd = cost_of(
            span.provider,
            span.response_model or span.request_model,
            span.input_tokens or 0,
            span.output_tokens or 0,
        )
    if not span.tags and not known.isdisjoint(TAG_KEYS):
        span.tags = _tags(_first(attrs, TAG_KEYS))


__all__ = ["GENAI_OPERATIONS", "OPENINFERENCE_KINDS", "cost_of", "normalize"]
