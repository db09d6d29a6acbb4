"""Text normalization shared by the classifiers and heuristics (not used for span offsets).

Undoes common obfuscation: compatibility forms (fullwidth, math letters) via NFKC, invisible and
bidirectional control characters, Unicode tag characters, Cyrillic/Greek look-alikes of Latin
letters, and leetspeak inside words. Reports which tricks it saw, so they can be signals.
"""

from __future__ import annotations

import re
import unicodedata

_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0]"
)
_TAGS = re.compile("[\U000e0000-\U000e007f]")
# Letters from other scripts that render like Latin ones (the confusables that matter most).
_HOMOGLYPHS = str.maketrans(
    "аеорсухкмтвнАЕОРСУХКМТВНіІјЈѕЅԁɡοΟαΑεΕιΙκΚνΝρΡτΤυχΧΒΗΖ",
    "aeopcyxkmtbhAEOPCYXKMTBHiIjJsSdgoOaAeEiIkKvNpPtTuxXBHZ",
)
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"}
)
_LEET_WORD = re.compile(r"\b(?=[a-z0-9@$!]*[a-z])(?=[a-z0-9@$!]*[0-9@$!])[a-z0-9@$!]{3,}\b")
_SPACES = re.compile(r"\s+")
_NON_LATIN_LETTER = re.compile(r"[^\x00-\x7f]")


def normalize(text: str) -> tuple[str, tuple[str, ...]]:
    """Lower-cased, de-obfuscated text and the names of the tricks found."""
    tricks: list[str] = []
    if _TAGS.search(text):
        # Tag characters smuggle ASCII: U+E0041 is an invisible "A".
        text = _TAGS.sub(lambda m: chr(ord(m.group(0)) - 0xE0000), text)
        tricks.append("unicode_tags")
    if _INVISIBLE.search(text):
        text = _INVISIBLE.sub("", text)
        tricks.append("invisible_characters")
    if not text.isascii():
        folded = unicodedata.normalize("NFKC", text)
        if folded != text and any(
            0xFF00 <= ord(c) <= 0xFFEF or 0x1D400 <= ord(c) <= 0x1D7FF for c in text
        ):
            tricks.append("fullwidth_or_styled")
        if _NON_LATIN_LETTER.search(folded):
            swapped = folded.translate(_HOMOGLYPHS)
            if swapped != folded and _mixes_scripts(folded):
                tricks.append("homoglyphs")
                folded = swapped
        text = folded
    lowered = text.lower()
    if _LEET_WORD.search(lowered):
        deleet = _LEET_WORD.sub(lambda m: _deleet(m.group(0)), lowered)
        if deleet != lowered:
            tricks.append("leetspeak")
            lowered = deleet
    return _SPACES.sub(" ", lowered).strip(), tuple(tricks)


def _deleet(word: str) -> str:
    if word.isdigit() or sum(c.isdigit() for c in word) * 2 > len(word):
        return word  # numbers and codes, not leetspeak
    return word.translate(_LEET)


def _mixes_scripts(text: str) -> bool:
    """A word that mixes Latin letters with look-alikes from another script."""
    for word in text.split():
        has_ascii = any("a" <= c.lower() <= "z" for c in word)
        if has_ascii and word.translate(_HOMOGLYPHS) != word:
            return True
    return False


__all__ = ["normalize"]
