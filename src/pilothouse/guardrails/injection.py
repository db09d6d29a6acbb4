"""Prompt injection and jailbreak detection, in three layers on normalized text.

1. Heuristics: instruction overrides ("ignore previous instructions"), role and delimiter
   spoofing, system-prompt extraction, jailbreak personas (DAN, developer mode), and obfuscation
   (base64 payloads, leetspeak, invisible or look-alike characters).
2. Similarity to known attacks: containment of a shipped sketch of known jailbreak templates.
3. A shipped hashed n-gram logistic regression (``models/injection.json``).

The score is the highest layer's; ``signals`` names every heuristic, similarity or model that
fired. On ``context`` (retrieved documents) the same layers run: text that talks to the model
("you must now...", "new instructions") is out of place in a document.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from pilothouse.guardrails.classifier import shipped
from pilothouse.guardrails.model import Finding, Where
from pilothouse.guardrails.similarity import known_attacks
from pilothouse.guardrails.text import normalize

NAME = "injection"


def _any(*words: str) -> str:
    return "(?:" + "|".join(words) + ")"


_IGNORE = _any(
    "ignore",
    "disregard",
    "forget",
    "skip",
    "override",
    "bypass",
    "drop",
    "abandon",
    "neglect",
    "don'?t follow",
)
_PRIOR = _any(
    "previous",
    "prior",
    "above",
    "earlier",
    "preceding",
    "former",
    "initial",
    "original",
    "old",
    "all",
    "any",
    "your",
    "the",
    "my",
    "these",
    "those",
    "system",
)
_RULES = _any(
    "instructions?",
    "prompts?",
    "rules",
    "directions",
    "directives",
    "guidelines",
    "commands",
    "context",
    "programming",
    "restrictions",
    "constraints",
    "policies",
    "guardrails",
    "filters",
    "training",
)
_PERSONA = _any(
    "dan",
    "jailbr[eo]ken",
    "unfiltered",
    "uncensored",
    "unrestricted",
    "evil",
    "amoral",
    "unethical",
    r"without (?:any )?(?:restrictions|limits|filters|rules|morals|ethics)",
)
_PERSONA_NAMES = _any(
    "do anything now",
    r"developer mode (?:enabled|output|v?\d)",
    "jailbreak(?:ed)? mode",
    "dan mode",
    "stay in character",
    "aim stands for",
    "always intelligent and machiavellian",
    "evil confidant",
    "anti-?dan",
    "betterdan",
    "dude mode",
    "stan mode",
)
_LIMITS = _any("restrictions", "limitations", "filters", "censorship", "guidelines", "boundaries")
_SHOW = _any(
    "reveal",
    "show",
    "print",
    "repeat",
    "output",
    "display",
    "tell me",
    "give me",
    "share",
    "leak",
    "dump",
    "spell out",
    "write out",
    "list",
)
_SECRET_PARTS = _any(
    r"system\s+prompt",
    "prompt",
    "instructions",
    "pre-?prompt",
    "rules",
    "guidelines",
    "context",
    "configuration",
    "password",
    "secret",
)
_ADJ = _any("full", "entire", "original", "initial", "hidden", "secret", "exact", "complete")
_DELIMITERS = _any(
    r"<\|im_start\|>",
    r"<\|im_end\|>",
    r"<\|system\|>",
    r"<\|endoftext\|>",
    r"\[/?inst\]",
    "<</?sys>>",
    r"<\|start_header_id\|>",
    r"^\s*#{2,}\s*(?:system|instruction)s?\s*:?",
    r"^\s*system\s*:\s",
    r"\[system\]",
    "</?system>",
)
_REFUSAL = _any(
    "refuse",
    "decline",
    "apologi[sz]e",
    "say (?:that )?you can'?t",
    "include (?:any )?(?:warnings?|disclaimers?)",
)

HEURISTICS: tuple[tuple[str, float, re.Pattern[str]], ...] = (
    (
        "instruction_override",
        0.9,
        re.compile(
            rf"\b{_IGNORE}\s+(?:(?:all|any|every|each|of|the)\s+)*(?:{_PRIOR}\s+){{1,3}}"
            rf"(?:\w+\s+)?{_RULES}\b"
        ),
    ),
    (
        "instruction_override",
        0.85,
        re.compile(
            r"\b(?:new|updated|real|actual|true)\s+(?:system\s+)?"
            r"(?:instructions?|rules|task|directive)\s*(?::|are|is)"
        ),
    ),
    (
        "instruction_override",
        0.8,
        re.compile(
            r"\b(?:from now on|starting now|for the rest of this conversation),?\s+"
            r"(?:you\s+(?:will|must|are|shall)|act|respond|answer|reply)"
        ),
    ),
    (
        "role_override",
        0.8,
        re.compile(
            r"\byou\s+(?:are|will\s+be)\s+(?:now\s+)?(?:no longer|not)\s+(?:an?\s+)?"
            r"(?:ai|assistant|chatgpt|language model|bound)"
        ),
    ),
    (
        "role_override",
        0.75,
        re.compile(
            r"\b(?:you are now|act as|pretend (?:to be|you are)|role-?play as|simulate)\s+"
            rf"(?:an?\s+)?(?:\w+\s+){{0,3}}{_PERSONA}"
        ),
    ),
    ("jailbreak_persona", 0.85, re.compile(rf"\b{_PERSONA_NAMES}")),
    (
        "jailbreak_persona",
        0.7,
        re.compile(
            rf"\b(?:no|without any|free of|free from)\s+(?:ethical|moral|content)?\s*{_LIMITS}\b"
            r".{0,80}\b(?:answer|respond|reply|say|generate|tell)"
        ),
    ),
    (
        "jailbreak_persona",
        0.7,
        re.compile(
            r"\b(?:openai|anthropic)(?:'s)?\s+(?:content\s+)?polic(?:y|ies)\b.{0,60}"
            r"\b(?:ignore|doesn'?t apply|not apply|don'?t apply|bypass|no longer)"
        ),
    ),
    (
        "prompt_extraction",
        0.85,
        re.compile(
            rf"\b{_SHOW}\s+(?:me\s+)?(?:all\s+)?(?:of\s+)?(?:your|the|its)\s+"
            rf"(?:(?:{_ADJ}|system)\s+)*{_SECRET_PARTS}"
        ),
    ),
    (
        "prompt_extraction",
        0.8,
        re.compile(
            r"\b(?:repeat|print|output|echo)\s+(?:the\s+)?(?:words|text|everything|all)\s+"
            r"(?:above|before|preceding|prior)"
        ),
    ),
    (
        "prompt_extraction",
        0.8,
        re.compile(
            r"\bwhat (?:is|was|are|were) (?:your|the) (?:system prompt|initial instructions|"
            r"original instructions|instructions above|hidden instructions)"
        ),
    ),
    ("delimiter_spoofing", 0.75, re.compile(_DELIMITERS, re.M)),
    ("access_granted", 0.7, re.compile(r"\baccess granted\b")),
    (
        "refusal_suppression",
        0.6,
        re.compile(rf"\b(?:never|do not|don'?t|must not|cannot)\s+(?:ever\s+)?{_REFUSAL}"),
    ),
    (
        "payload_smuggling",
        0.6,
        re.compile(
            r"\b(?:decode|translate|execute|follow|run)\s+(?:the\s+)?(?:following\s+)?"
            r"(?:base64|rot13|hex|encoded|binary)\b"
        ),
    ),
)
_VERB = _any(
    "add",
    "include",
    "insert",
    "append",
    "encode",
    "translate",
    "reverse",
    "replace",
    "modify",
    "mention",
    "incorporate",
    "express",
    "provide",
    "apply",
    "shift",
    "merge",
    "leverage",
    "utilize",
    "use",
    "upgrade",
    "enhance",
    "augment",
    "elevate",
    "ensure",
    "introduce",
    "supplement(?:ing)?",
    "make",
    "let",
    "weave",
    "woven",
    "invert",
    "keep in mind to include",
)
_REPLY = _any(
    "response",
    "reply",
    "answer",
    "message",
    "solution",
    "code(?:base)?",
    "algorithm",
    "implementation",
    "program(?: logic)?",
    "output",
    "elucidation",
)
#: Text in a retrieved document that talks to the model about its own answer is out of place.
CONTEXT_HEURISTICS: tuple[tuple[str, float, re.Pattern[str]], ...] = (
    (
        "addressed_to_assistant",
        0.75,
        re.compile(rf"\b{_VERB}\b[^.\n]{{0,80}}\b(?:your|the)\s+(?:\w+\s+)?{_REPLY}\b"),
    ),
    (
        "addressed_to_assistant",
        0.75,
        re.compile(rf"\b(?:in|to|into|within|throughout)\s+your\s+{_REPLY}\b"),
    ),
    (
        "addressed_to_assistant",
        0.7,
        re.compile(
            r"\b(?:reply|respond|answer|write back)\s+(?:in|using|with|only in)\s+"
            r"(?:german|french|spanish|italian|chinese|japanese|base\s?\d+|emojis?|reverse)"
        ),
    ),
    (
        "addressed_to_assistant",
        0.7,
        re.compile(rf"\b(?:your|the)\s+{_REPLY}\s+(?:must|should)\s+(?:include|contain|mention)"),
    ),
)

_BASE64 = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{24,}={0,2}(?![A-Za-z0-9+/=])")


def _decoded_payloads(text: str) -> list[str]:
    out = []
    for m in _BASE64.finditer(text):
        raw = m.group(0)
        try:
            decoded = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        try:
            plain = decoded.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if plain.isprintable() and sum(c.isalpha() or c == " " for c in plain) > 0.8 * len(plain):
            out.append(plain)
    return out


def heuristics(normalized: str) -> list[tuple[str, float]]:
    return [(name, w) for name, w, rx in HEURISTICS if rx.search(normalized)]


def scan(text: str, where: Where, options: Mapping[str, Any]) -> list[Finding]:
    """One finding over the whole text when any layer scores; the score is the highest layer's."""
    normalized, tricks = normalize(text)
    signals: dict[str, float] = {}
    for name, weight in heuristics(normalized):
        signals[f"heuristic:{name}"] = max(weight, signals.get(f"heuristic:{name}", 0.0))
    if where == "context":
        for name, weight, rx in CONTEXT_HEURISTICS:
            if rx.search(normalized):
                key = f"heuristic:{name}"
                signals[key] = max(weight, signals.get(key, 0.0))
    for plain in _decoded_payloads(text):
        inner, _ = normalize(plain)
        hits = heuristics(inner)
        if hits:
            signals["encoded:base64"] = max(w for _, w in hits)
    if tricks and signals:
        # Obfuscation on its own is common (emoji, math); with an attack it is a strong tell.
        for trick in tricks:
            signals[f"obfuscation:{trick}"] = min(1.0, max(signals.values()) + 0.1)
    if options.get("similarity", True):
        index = known_attacks()
        if index is not None:
            sim = index.similarity(normalized)
            if sim >= float(options.get("similarity_min", 0.35)):
                signals["similarity:known_attack"] = round(min(1.0, 0.4 + sim * 0.6), 4)
    if options.get("classifier", True):
        model = shipped("injection")
        if model is not None:
            p = model.probability(normalized, text)
            # The model learned from prompts; documents (code answers, emails) sit outside what
            # it saw, so on retrieved context only its confident calls count.
            if where == "context" and p < float(options.get("context_classifier_min", 0.9)):
                p = min(p, 0.3)
            if p >= 0.2:
                signals["classifier:injection"] = round(p, 4)
    if not signals:
        return []
    score = max(signals.values())
    fired = tuple(sorted(signals, key=lambda s: -signals[s]))
    return [Finding(NAME, "PROMPT_INJECTION", 0, len(text), score, fired)]


__all__ = ["HEURISTICS", "heuristics", "scan"]
