"""Personal data found by compiled patterns plus validators (Luhn, IBAN mod-97, IP ranges).

Modelled on Presidio's pattern recognizers, without spaCy: every type is one regex, an optional
validator that turns a candidate into a confident match, and, for types that look like many
other numbers (dates of birth, passport/ID numbers), a required context word before the value.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pilothouse.guardrails.model import Finding, Where
from pilothouse.guardrails.ner import person_findings

NAME = "pii"


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20,
    "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18,
    "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30,
    "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_ok(candidate: str) -> bool:
    iban = candidate.replace(" ", "").upper()
    expected = _IBAN_LENGTHS.get(iban[:2])
    if expected is not None and len(iban) != expected:
        return False
    if not 15 <= len(iban) <= 34 or not iban.isascii() or not iban.isalnum():
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _ip_ok(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


_DATE_NUMERIC = r"(?:\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})|\d{4}-\d{2}-\d{2})"
_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DATE_WORDS = (
    rf"(?:\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTHS},?\s+\d{{4}}|"
    rf"{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}})"
)
_DATE = rf"(?:{_DATE_NUMERIC}|{_DATE_WORDS})"
_ONLY_DATE = re.compile(rf"{_DATE_NUMERIC}|\d{{4}}", re.I)
_STREET_TYPES = (
    r"(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|"
    r"terrace|ter|circle|cir|parkway|pkwy|highway|hwy|square|sq|trail|trl)"
)
_EU_SUFFIXES = (
    "strasse", "straße", "gasse", "weg", "platz", "katu", "tie", "vej", "gata", "laan",
    "straat", "allee",
)  # fmt: skip
_EU_STREET = (
    r"[^\W\d_][\w'-]*(?:stra(?:ss|ß)e|gasse|weg|platz|katu|tie|vej|gatan|gata|laan|straat|allee)"
)


@dataclass(frozen=True)
class Pattern:
    type: str
    regex: re.Pattern[str]
    score: float
    validate: Callable[[str], float | None] | None = None
    group: int = 0
    #: lower-case substrings of which one must occur for the regex to be worth running
    hints: tuple[str, ...] = ()


def _card(value: str) -> float | None:
    d = _digits(value)
    if not 12 <= len(d) <= 19 or len(set(d)) < 2 or not luhn_ok(d):
        return None
    return 0.95 if len(d) > 12 else 0.7


def _iban(value: str) -> float | None:
    return 0.95 if iban_ok(value) else None


def _ip(value: str) -> float | None:
    if not _ip_ok(value):
        return None
    # Version strings (1.2.3.4) look like IPs; private and reserved ranges are still personal
    # data in logs, so keep them but a little less sure.
    return 0.9 if value.count(".") == 3 and not value.startswith("0.") else 0.8


def _phone(value: str) -> float | None:
    main = re.split(r"\s*(?:x|ext\.?)\s*\d", value, maxsplit=1, flags=re.I)[0]
    d = _digits(main)
    if not 7 <= len(d) <= 15:
        return None
    if _ONLY_DATE.fullmatch(main.strip()):
        return None
    separated = len(main.split()) > 1 or any(c in main for c in "-.()")
    if main.startswith("+"):
        return 0.85
    if not separated:
        # A bare run of digits is a phone number only when it has a phone's length.
        return 0.6 if 10 <= len(d) <= 11 else None
    groups = len(re.findall(r"\d+", main))
    if groups == 2 and len(d) < 9 and "(" not in main:
        return 0.4  # 1234 567: street numbers, zip codes, years look the same
    if "." in main and "-" not in main and " " not in main and main.count(".") in (2, 3):
        return 0.55  # 12.34.56.78 style: also versions or IP-like numbers
    return 0.75


def _ssn(value: str) -> float | None:
    d = _digits(value)
    if len(d) != 9 or d[:3] in ("000", "666") or d[0] == "9" or d[3:5] == "00":
        return None
    if d[5:] == "0000" or len(set(d)) == 1:
        return None
    return 0.9


def _id_number(value: str) -> float | None:
    if not any(c.isdigit() for c in value) or len(value) < 6:
        return None
    return 0.8


PATTERNS: tuple[Pattern, ...] = (
    Pattern(
        "EMAIL",
        re.compile(
            r"(?<![\w.%+-])[\w.%+-]{1,64}@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}\b"
        ),
        0.95,
        hints=("@",),
    ),
    Pattern(
        "URL",
        re.compile(r"\b(?:(?:https?|ftp)://|www\.)[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]}]", re.I),
        0.9,
        hints=("://", "www."),
    ),
    Pattern(
        "IP_ADDRESS",
        re.compile(
            r"(?<![\w.:])(?:(?:\d{1,3}\.){3}\d{1,3}|"
            r"(?:[0-9a-f]{1,4}:){2,7}[0-9a-f]{0,4}(?::[0-9a-f]{1,4}){0,5}|::(?:[0-9a-f]{1,4}:?){1,7})"
            r"(?![\w.:])",
            re.I,
        ),
        0.9,
        _ip,
        hints=(".", ":"),
    ),
    Pattern(
        "CREDIT_CARD",
        re.compile(r"(?<![\d-])(?:\d[ -]?){11,18}\d(?![\d-])"),
        0.95,
        _card,
    ),
    Pattern(
        "IBAN",
        re.compile(
            r"\b[A-Z]{2}[0-9]{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)\b",
            re.I,
        ),
        0.95,
        _iban,
    ),
    Pattern(
        "US_SSN",
        re.compile(r"(?<![\w-])\d{3}([- ])\d{2}\1\d{4}(?![\w-])"),
        0.9,
        _ssn,
    ),
    Pattern(
        "US_SSN",
        re.compile(r"(?i:\b(?:ssn|social security(?: number| no\.?)?)\W{0,5})(\d{9})\b"),
        0.9,
        _ssn,
        group=1,
        hints=("ssn", "social security"),
    ),
    Pattern(
        "PHONE",
        re.compile(
            r"(?<![\w+/.-])(?:\+\d{1,3}[ .-]?)?(?:\(0\)[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?"
            r"\d{1,5}(?:[ .-]?\d{1,5}){0,5}(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?![\w/]|-\d)",
            re.I,
        ),
        0.75,
        _phone,
    ),
    Pattern(
        "DATE_OF_BIRTH",
        re.compile(
            rf"(?i:\b(?:born|birth\s*date|date\s+of\s+birth|birthday|dob|d\.o\.b\.?)"
            rf"(?:\s+(?:on|in|is|was))?\W{{0,4}})((?i:{_DATE}))",
        ),
        0.85,
        group=1,
        hints=("born", "birth", "dob", "d.o.b"),
    ),
    Pattern(
        "ID_NUMBER",
        re.compile(
            r"(?i:\b(?:passport|national\s+id|identity\s+card|id\s+card|driver'?s?\s+licen[cs]e|"
            r"licen[cs]e|tax\s+id|personalausweis|dni|nif|nie)"
            r"(?:\s+(?:no\.?|number|num|#))?\s*(?:is|:|#)?\s*)([A-Z0-9][A-Z0-9-]{5,14})\b",
        ),
        0.8,
        _id_number,
        group=1,
        hints=("passport", "id", "licen", "tax", "personalausweis", "dni", "nif", "nie"),
    ),
    Pattern(
        "ADDRESS",
        re.compile(
            rf"\b\d{{1,6}}[A-Za-z]?\s+(?:[^\W\d_][\w.'-]*\s+){{1,4}}(?i:{_STREET_TYPES})\b\.?"
            rf"(?:,?\s+(?i:apt|apartment|suite|unit|#)\.?\s*\w{{1,6}})?"
        ),
        0.8,
    ),
    Pattern(
        "ADDRESS",
        re.compile(rf"(?i:\b{_EU_STREET})\s+\d{{1,5}}[a-z]?\b"),
        0.7,
        hints=_EU_SUFFIXES,
    ),
    Pattern(
        "ADDRESS",
        re.compile(
            r"(?i:\b(?:via|viale|piazza|rue|calle|avenida|rua|plaza|ul\.))"
            r"(?:\s+[^\W\d_][\w'.-]*){0,3}\s+\d{1,5}[a-z]?\b"
        ),
        0.7,
        hints=("via", "piazza", "rue", "calle", "avenida", "rua", "plaza", "ul."),
    ),
    Pattern(
        "ADDRESS",
        re.compile(r"(?i:\b(?:apt|apartment|suite|unit)\.?\s+#?\d{1,5}\b)"),
        0.6,
        hints=("apt", "apartment", "suite", "unit"),
    ),
    Pattern(
        "ADDRESS",
        re.compile(
            r"(?i:\b(?:PSC\s+\d{3,5},\s+Box\s+\d{3,5}|Unit\s+\d{3,5},?\s+Box\s+\d{3,5}|"
            r"US[A-Z]{1,3}\s+[^\W\d_]+)\s+[AFD]PO\s+A[AEP]\s+\d{5})"
        ),
        0.85,
        hints=("apo", "fpo", "dpo"),
    ),
)

TYPES: tuple[str, ...] = tuple(dict.fromkeys(p.type for p in PATTERNS))


def scan(text: str, where: Where, options: Mapping[str, Any]) -> list[Finding]:
    """Every PII candidate that passes its validator, possibly overlapping (the engine resolves)."""
    wanted = options.get("types")
    enabled = set(wanted) if wanted else None
    out: list[Finding] = []
    lower = text.lower()
    for p in PATTERNS:
        if enabled is not None and p.type not in enabled:
            continue
        if p.hints and not any(h in lower for h in p.hints):
            continue
        for m in p.regex.finditer(text):
            value = m.group(p.group)
            score: float | None = p.score
            if p.validate is not None:
                score = p.validate(value)
            if score is None:
                continue
            if p.type == "IBAN" or p.type == "CREDIT_CARD":
                signal = f"{p.type.lower()}:checksum"
            else:
                signal = f"{p.type.lower()}:pattern"
            out.append(Finding(NAME, p.type, m.start(p.group), m.end(p.group), score, (signal,)))
    if enabled is None or "PERSON" in enabled:
        out.extend(person_findings(text, NAME))  # only with a NER backend configured
    return out


__all__ = ["PATTERNS", "TYPES", "iban_ok", "luhn_ok", "scan"]
