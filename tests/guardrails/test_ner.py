"""The NER seam of the pii check: person names from a recognizer (a fake one here)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

from pilothouse.errors import ConfigError
from pilothouse.guardrails import Vault, check
from pilothouse.guardrails.ner import RECOGNIZER, load_recognizer
from pilothouse.guardrails.pii import scan

NAMES = re.compile(r"Ada Lovelace|Grace Hopper|Zoë Ångström")


def fake_recognizer(text: str) -> Sequence[tuple[int, int, str, float]]:
    """Known names as PERSON, 'Paris' as a place, and a broken span a backend might return."""
    found = [(m.start(), m.end(), "PERSON", 0.9) for m in NAMES.finditer(text)]
    found += [(m.start(), m.end(), "GPE", 0.9) for m in re.finditer("Paris", text)]
    return [*found, (5, 2, "PER", 0.9), (0, len(text) + 10, "PER", 0.9)]


def test_without_a_recognizer_there_are_no_person_findings() -> None:
    assert RECOGNIZER.get() is None
    assert [f.type for f in scan("Ada Lovelace wrote to ada@example.com", "input", {})] == ["EMAIL"]


def test_person_names_are_found_and_pseudonymized() -> None:
    text = "Ada Lovelace met Zoë Ångström in Paris; mail ada@example.com"
    with RECOGNIZER.using(fake_recognizer):
        found = scan(text, "input", {})
        persons = [(text[f.start : f.end], f.signals) for f in found if f.type == "PERSON"]
        assert persons == [("Ada Lovelace", ("person:ner",)), ("Zoë Ångström", ("person:ner",))]
        assert [f.type for f in scan(text, "input", {"types": ["EMAIL"]})] == ["EMAIL"]
        vault = Vault()
        policy = {
            "input": [{"check": "pii", "action": "pseudonymize"}],
            "output": [{"check": "pii", "action": "log"}],
        }
        decision = check(text, policy, "input", vault)
        assert decision.text == "<PERSON_1> met <PERSON_2> in Paris; mail <EMAIL_1>"
        answer = check("Dear <PERSON_2>, <PERSON_1> says hi", policy, "output", vault)
        assert answer.text == "Dear Zoë Ångström, Ada Lovelace says hi"


def test_load_recognizer_specs() -> None:
    loaded = load_recognizer("tests.guardrails.test_ner:fake_recognizer")
    assert loaded("Grace Hopper")[0] == (0, 12, "PERSON", 0.9)
    try:
        import spacy  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"guardrails\.ner: spaCy"):
            load_recognizer("spacy")
    with pytest.raises(ConfigError, match=r"guardrails\.ner: .*cannot be loaded"):
        load_recognizer("tests.guardrails.test_ner:missing")


def test_configure_loads_once_per_spec() -> None:
    with RECOGNIZER.using(None):
        RECOGNIZER.configure("tests.guardrails.test_ner:fake_recognizer")
        first = RECOGNIZER.get()
        RECOGNIZER.configure("tests.guardrails.test_ner:fake_recognizer")
        assert RECOGNIZER.get() is first is not None
        RECOGNIZER.configure("")  # empty leaves it in place
        assert RECOGNIZER.get() is first
    assert RECOGNIZER.get() is None
