"""Policy-specific content checks: banned words and topics, regexes, length, JSON schema, canary.

These take their configuration from the policy rule's ``options``, for example::

    - check: keywords
      action: block
      options: {topics: {competitors: [acme, globex]}, words: [confidential]}
    - check: regex
      action: redact
      options: {patterns: {TICKET: "JIRA-[0-9]+"}}
    - check: json_schema
      action: block
      options: {schema: {type: object, required: [answer]}}
"""

from __future__ import annotations

import functools
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema

from pilothouse.guardrails.model import Finding, Where
from pilothouse.guardrails.text import normalize

CANARY_PREFIX = "ph-canary-"


@functools.lru_cache(maxsize=256)
def _word_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    body = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)", re.I)


def word_spans(text: str, words: Sequence[str]) -> list[tuple[int, int]]:
    """Offsets of whole-word, case-insensitive matches of ``words`` in ``text``."""
    kept = tuple(w for w in words if w.strip())
    return [m.span() for m in _word_pattern(kept).finditer(text)] if kept else []


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _word_lists(options: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    lists: dict[str, tuple[str, ...]] = {}
    words = options.get("words") or ()
    if words:
        lists["KEYWORD"] = tuple(str(w) for w in words if str(w).strip())
    for topic, topic_words in dict(options.get("topics") or {}).items():
        lists[str(topic).upper()] = tuple(str(w) for w in topic_words or () if str(w).strip())
    return {k: v for k, v in lists.items() if v}


def scan_keywords(text: str, where: Where, options: Mapping[str, Any]) -> list[Finding]:
    """Denied words, phrases and topics (keyword lists), matched case-insensitively on words.

    Matches on the original text give exact spans; a second pass on the normalized text
    catches obfuscated spellings (leetspeak, look-alike letters) and flags the whole text.
    """
    out: list[Finding] = []
    lists = _word_lists(options)
    for kind, words in lists.items():
        rx = _word_pattern(words)
        spans = [
            Finding("keywords", kind, m.start(), m.end(), 1.0, (f"keyword:{kind.lower()}",))
            for m in rx.finditer(text)
        ]
        if not spans and options.get("normalize", True):
            normalized, tricks = normalize(text)
            if rx.search(normalized):
                signals = (f"keyword:{kind.lower()}", *(f"obfuscation:{t}" for t in tricks))
                spans = [Finding("keywords", kind, 0, len(text), 0.9, signals)]
        out.extend(spans)
    return out


def scan_regex(text: str, where: Where, options: Mapping[str, Any]) -> list[Finding]:
    """Matches of the named regexes in ``options.patterns`` ({TYPE: regex})."""
    out: list[Finding] = []
    for kind, pattern in dict(options.get("patterns") or {}).items():
        rx = _compiled(str(pattern))
        if rx is None:
            continue
        name = str(kind).upper()
        for m in rx.finditer(text):
            if m.end() > m.start():
                out.append(
                    Finding("regex", name, m.start(), m.end(), 1.0, (f"regex:{name.lower()}",))
                )
    return out


def scan_max_length(text: str, where: Where, options: Mapping[str, Any]) -> list[Finding]:
    """Fires when the text is longer than ``max_chars`` characters."""
    limit = int(options.get("max_chars", 0) or 0)
    if limit and len(text) > limit:
        return [
            Finding(
                "max_length", "TOO_LONG", limit, len(text), 1.0, (f"length:{len(text)}>{limit}",)
            )
        ]
    return []


@functools.lru_cache(maxsize=64)
def _validator(schema_json: str) -> jsonschema.protocols.Validator | None:
    try:
        schema = json.loads(schema_json)
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        validator: jsonschema.protocols.Validator = cls(schema)
    except (ValueError, jsonschema.SchemaError):
        return None
    return validator


def _strip_fence(text: str) -> str:
    stripped = text.strip()
    m = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", stripped, re.S)
    return m.group(1) if m else stripped


def schema_errors(text: str, schema: Any) -> tuple[str, list[jsonschema.ValidationError]]:
    """Why ``text`` is not JSON matching ``schema``: a finding type ('' when valid) and the
    schema errors, ordered by path."""
    try:
        value = json.loads(_strip_fence(text))
    except ValueError:
        return "INVALID_JSON", []
    if schema is None:
        return "", []
    validator = _validator(json.dumps(schema, sort_keys=True))
    if validator is None:
        return "INVALID_SCHEMA", []
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    return ("SCHEMA_MISMATCH" if errors else ""), errors


def error_path(error: jsonschema.ValidationError) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "$"


def scan_json_schema(text: str, where: Where, options: Mapping[str, Any]) -> list[Finding]:
    """Fires when the text is not JSON, or is JSON that does not match ``options.schema``."""
    kind, errors = schema_errors(text, options.get("schema"))
    if not kind:
        return []
    signals = {
        "INVALID_JSON": ("json:parse_error",),
        "INVALID_SCHEMA": ("json:bad_schema",),
    }.get(kind) or tuple(f"schema:{error_path(e)}:{e.validator}" for e in errors[:5])
    return [Finding("json_schema", kind, 0, len(text), 1.0, signals)]


def make_canary() -> str:
    """A fresh canary token to plant in a system prompt."""
    return CANARY_PREFIX + secrets.token_hex(8)


_CANARY_ANY = re.compile(re.escape(CANARY_PREFIX) + r"[0-9a-f]{16}")


def scan_canary(text: str, where: Where, options: Mapping[str, Any]) -> list[Finding]:
    """Fires when a canary token (``options.tokens``, or any ``ph-canary-...``) leaks.

    Also catches the token spelled with spaces, dashes or case changes in between.
    """
    tokens = [str(t) for t in options.get("tokens") or () if t]
    out: list[Finding] = []
    if tokens:
        for token in tokens:
            for m in re.finditer(re.escape(token), text, re.I):
                out.append(Finding("canary", "CANARY", m.start(), m.end(), 1.0, ("canary:exact",)))
    else:
        for m in _CANARY_ANY.finditer(text):
            out.append(Finding("canary", "CANARY", m.start(), m.end(), 1.0, ("canary:exact",)))
    if out:
        return out
    squashed = re.sub(r"[\s\-_.`'\"*]", "", text).lower()
    needles = [re.sub(r"[\s\-_.]", "", t).lower() for t in tokens] or ["phcanary"]
    if any(n and n in squashed for n in needles):
        return [Finding("canary", "CANARY", 0, len(text), 0.9, ("canary:obfuscated",))]
    return []


__all__ = [
    "CANARY_PREFIX",
    "error_path",
    "make_canary",
    "scan_canary",
    "scan_json_schema",
    "scan_keywords",
    "scan_max_length",
    "scan_regex",
    "schema_errors",
    "word_spans",
]
