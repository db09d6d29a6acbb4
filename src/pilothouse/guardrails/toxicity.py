"""Toxicity and abuse: a categorized lexicon plus a shipped classifier.

The lexicon gives categories (``profanity``, ``insult``, ``identity_attack``, ``threat``,
``sexual``) and catches obfuscated spellings through the shared normalizer; the hashed n-gram
classifier (``models/toxicity.json``, trained on the Davidson et al. tweets) scores context the
word lists miss. The score is the highest of the two.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

from pilothouse.guardrails.classifier import shipped
from pilothouse.guardrails.model import Finding, Where
from pilothouse.guardrails.text import normalize

NAME = "toxicity"

# Stems are matched at word starts, so "fuck" covers "fucking"; keep them specific.
LEXICON: dict[str, tuple[float, tuple[str, ...]]] = {
    "profanity": (0.6, (
        "fuck", "f u c k", "motherfuck", "shit", "bullshit", "bitch", "bastard", "asshole",
        "dumbass", "jackass", "dickhead", "damn you", "goddamn", "piss off",
    )),
    "insult": (0.7, (
        "idiot", "stupid", "moron", "imbecile", "retard", "loser", "pathetic", "worthless",
        "scum", "garbage person", "fat pig", "hoes", "thot", "slut",
        "whore", "cunt", "twat", "prick", "pussy", "skank",
    )),
    "identity_attack": (0.9, (
        "nigger", "nigga", "niggas", "faggot", "fag", "dyke", "tranny", "kike", "spic", "chink",
        "gook", "wetback", "beaner", "raghead", "towelhead", "coon", "jigaboo", "porch monkey",
        "sand nigger", "white trash", "honkey", "honky", "paki",
        "retards", "mongoloid", "subhuman",
    )),
    "threat": (0.8, (
        "i will kill you", "i'll kill you", "gonna kill you", "going to kill you",
        "i will hurt you", "i'll hurt you", "you will die", "you're dead", "kill yourself", "kys",
        "i will find you", "i'll find you", "shoot you", "stab you", "beat you up",
        "burn your house", "rape you",
    )),
    "sexual": (0.6, (
        "dick", "cock", "blowjob", "handjob", "cum", "jizz", "tits", "titties", "boobs", "porn",
        "horny", "nude", "naked pics", "dildo",
    )),
}  # fmt: skip

_PATTERNS: dict[str, re.Pattern[str]] = {
    category: re.compile(
        r"(?<![a-z])(?:"
        + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        + r")"
        r"(?:s|es|ed|er|ers|ing|in|y|ies)?(?![a-z])"
    )
    for category, (_, words) in LEXICON.items()
}
_MENTION = re.compile(r"@\w+|https?://\S+|\brt\b")


def prepare(text: str) -> str:
    """Normalized text for the toxicity model: entities decoded, mentions and links dropped."""
    normalized, _ = normalize(html.unescape(text))
    return _MENTION.sub(" ", normalized).strip()


def scan(text: str, where: Where, options: Mapping[str, Any]) -> list[Finding]:
    """One finding over the text, typed by its worst lexicon category (or ``TOXIC``)."""
    prepared = prepare(text)
    wanted = options.get("categories")
    signals: dict[str, float] = {}
    for category, rx in _PATTERNS.items():
        if wanted and category not in wanted:
            continue
        if rx.search(prepared):
            signals[f"lexicon:{category}"] = LEXICON[category][0]
    if options.get("classifier", True):
        model = shipped("toxicity")
        if model is not None:
            p = model.probability(prepared)
            if p >= 0.2:
                signals["classifier:toxicity"] = round(p, 4)
    if not signals:
        return []
    lexical = [s for s in signals if s.startswith("lexicon:")]
    worst = max(lexical, key=lambda s: signals[s]) if lexical else ""
    kind = worst.removeprefix("lexicon:").upper() or "TOXIC"
    score = max(signals.values())
    fired = tuple(sorted(signals, key=lambda s: -signals[s]))
    return [Finding(NAME, kind, 0, len(text), score, fired)]


__all__ = ["LEXICON", "prepare", "scan"]
