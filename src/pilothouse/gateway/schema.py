"""Checks of ``/v1`` request bodies: wrong or missing fields become 400s naming the field.

Only what the gateway itself relies on is checked; every other parameter passes through to
the provider untouched.
"""

from __future__ import annotations

from typing import Any

import orjson

from pilothouse.errors import BadRequest

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def invalid(param: str, message: str, code: str = "invalid_type") -> BadRequest:
    return BadRequest(f"{param}: {message}", code=code, param=param)


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body."""
    if not raw:
        raise BadRequest("the request body is empty; expected a JSON object", code="invalid_json")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            f"the request body is not valid JSON: {exc}", code="invalid_json", param="body"
        ) from None
    if not isinstance(doc, dict):
        raise invalid("body", "expected a JSON object")
    return doc


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise invalid("model", "required", "missing_required_parameter")
    if not isinstance(model, str) or not model:
        raise invalid("model", "expected a non-empty string")
    return model


def _types(body: dict[str, Any], spec: dict[str, tuple[type, ...]]) -> None:
    for name, value in body.items():  # a body sets a few of the typed fields: walk the body
        types = spec.get(name)
        if types is None or value is None:
            continue
        if isinstance(value, bool) and bool not in types:
            raise invalid(name, f"expected {_type_names(types)}, got a boolean")
        if not isinstance(value, types):
            raise invalid(name, f"expected {_type_names(types)}, got {_json_type(value)}")


def _type_names(types: tuple[type, ...]) -> str:
    names = {
        bool: "a boolean", int: "an integer", float: "a number", str: "a string",
        list: "an array", dict: "an object",
    }  # fmt: skip
    return " or ".join(names[t] for t in types if not (t is int and float in types))


def _json_type(value: Any) -> str:
    return {
        bool: "a boolean", int: "an integer", float: "a number", str: "a string",
        list: "an array", dict: "an object",
    }.get(type(value), type(value).__name__)  # fmt: skip


_CHAT_TYPES: dict[str, tuple[type, ...]] = {
    "stream": (bool,),
    "n": (int,),
    "max_tokens": (int,),
    "max_completion_tokens": (int,),
    "temperature": (int, float),
    "top_p": (int, float),
    "seed": (int,),
    "stop": (str, list),
    "tools": (list,),
    "tool_choice": (str, dict),
    "response_format": (dict,),
    "stream_options": (dict,),
    "user": (str,),
}


def check_chat(body: dict[str, Any]) -> str:
    """Validate a chat completion request; returns the model."""
    model = _model(body)
    messages = body.get("messages")
    if messages is None:
        raise invalid("messages", "required", "missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages", "expected a non-empty array of messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid(f"messages[{i}]", f"expected an object, got {_json_type(message)}")
        role = message.get("role")
        if role not in ROLES:
            raise invalid(
                f"messages[{i}].role",
                f"expected one of {', '.join(sorted(ROLES))}, got {role!r}",
                "invalid_value",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):  # no union per message
            raise invalid(
                f"messages[{i}].content",
                f"expected a string or an array, got {_json_type(content)}",
            )
    _types(body, _CHAT_TYPES)
    n = body.get("n")
    if n is not None and n < 1:
        raise invalid("n", "expected an integer >= 1", "invalid_value")
    if body.get("stream_options") is not None and not body.get("stream"):
        raise invalid("stream_options", "only allowed when stream is true", "invalid_value")
    for i, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict) or not isinstance(tool.get("function"), dict):
            raise invalid(f"tools[{i}].function", "expected an object with name and parameters")
    return model


def check_embeddings(body: dict[str, Any]) -> str:
    model = _model(body)
    value = body.get("input")
    if value is None:
        raise invalid("input", "required", "missing_required_parameter")
    if not isinstance(value, str | list) or (isinstance(value, list) and not value):
        raise invalid("input", "expected a string or a non-empty array")
    _types(body, {"dimensions": (int,), "encoding_format": (str,), "user": (str,)})
    return model


def check_completions(body: dict[str, Any]) -> str:
    model = _model(body)
    if body.get("prompt") is None:
        raise invalid("prompt", "required", "missing_required_parameter")
    _types(body, {"stream": (bool,), "max_tokens": (int,), "n": (int,), "stream_options": (dict,)})
    return model
