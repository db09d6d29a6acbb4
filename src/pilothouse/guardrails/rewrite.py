"""Rewriting matched spans: typed placeholders (``<EMAIL_1>``), reversible pseudonyms, restore.

Placeholders are numbered per type in order of first appearance; the same value gets the same
placeholder. A :class:`Vault` keeps the mapping for one request so the model's answer can be
restored before it reaches the user (the model never sees the real values).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pilothouse.guardrails.model import Finding

PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]{0,40})_([0-9]{1,6})>")
# The longest text a placeholder can span, so streams know how much to hold back.
_MAX_PLACEHOLDER = 1 + 41 + 1 + 6 + 1


def resolve_overlaps(findings: Iterable[Finding]) -> list[Finding]:
    """Non-overlapping spans, left to right. On overlap the higher score wins, then the longer.

    Adjacent spans (one ends where the next starts) both stay.
    """
    ranked = sorted(findings, key=lambda f: (-f.score, -(f.end - f.start), f.start))
    kept: list[Finding] = []
    for f in ranked:
        if f.end <= f.start:
            continue
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    kept.sort(key=lambda f: f.start)
    return kept


class Vault:
    """Placeholders of one conversation: value -> placeholder and back."""

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._by_placeholder)

    def placeholder(self, kind: str, value: str, *, keep: bool = True) -> str:
        """The placeholder for ``value``; ``keep=False`` (redaction) makes it unrestorable."""
        key = (kind, value)
        found = self._by_value.get(key)
        if found is not None and (keep or found not in self._by_placeholder):
            return found
        n = self._counts.get(kind, 0) + 1
        self._counts[kind] = n
        name = f"<{kind}_{n}>"
        if keep:
            self._by_value[key] = name
            self._by_placeholder[name] = value
        else:
            self._by_value.setdefault(key, name)
        return name

    def restore(self, text: str) -> str:
        """Put the real values back in place of this vault's placeholders."""
        if not self._by_placeholder or "<" not in text:
            return text
        return PLACEHOLDER.sub(lambda m: self._by_placeholder.get(m.group(0), m.group(0)), text)

    def to_dict(self) -> dict[str, str]:
        """The placeholder -> value mapping (sensitive: keep it in memory only)."""
        return dict(self._by_placeholder)


def placeholder_type(kind: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", kind.upper())[:40] or "REDACTED"


def rewrite(text: str, spans: list[Finding], vault: Vault, keep: set[int] | None = None) -> str:
    """Replace each (non-overlapping, sorted) span by its placeholder from ``vault``.

    Spans whose ``id()`` is in ``keep`` are pseudonymized (restorable), the others redacted;
    with ``keep=None`` every span is pseudonymized.
    """
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    for f in spans:
        out.append(text[pos : f.start])
        restorable = keep is None or id(f) in keep
        value = text[f.start : f.end]
        out.append(vault.placeholder(placeholder_type(f.type), value, keep=restorable))
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


class StreamRestorer:
    """Restores placeholders in a streamed answer whose chunks may split a placeholder.

    ``feed(chunk)`` returns the text safe to send now; a trailing fragment that could still
    become a placeholder is held back until the next chunk or ``flush()``.
    """

    _PARTIAL = re.compile(r"<[A-Z0-9_]*$")

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self._held = ""

    def feed(self, chunk: str) -> str:
        text = self._held + chunk
        self._held = ""
        m = self._PARTIAL.search(text, max(0, len(text) - _MAX_PLACEHOLDER))
        if m is not None:
            self._held = text[m.start() :]
            text = text[: m.start()]
        return self.vault.restore(text)

    def flush(self) -> str:
        text, self._held = self._held, ""
        return self.vault.restore(text)


__all__ = ["PLACEHOLDER", "StreamRestorer", "Vault", "resolve_overlaps", "rewrite"]
