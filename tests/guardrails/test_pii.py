from typing import Any

import pytest

from pilothouse.guardrails import check, pii
from pilothouse.guardrails.rewrite import resolve_overlaps


def found(text: str, **options: Any) -> list[tuple[str, str]]:
    hits = [f for f in pii.scan(text, "input", options) if f.score >= 0.5]
    return [(f.type, text[f.start : f.end]) for f in resolve_overlaps(hits)]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("write to ada.lovelace@example.co.uk today", "EMAIL", "ada.lovelace@example.co.uk"),
        ("mail jörg.müller@exämple.de", "EMAIL", "jörg.müller@exämple.de"),
        ("call +44 20 7946 0958 now", "PHONE", "+44 20 7946 0958"),
        ("call (555) 123-4567", "PHONE", "(555) 123-4567"),
        ("tel +41 (0)96 471 07 95-Office", "PHONE", "+41 (0)96 471 07 95"),
        ("card 4111 1111 1111 1111.", "CREDIT_CARD", "4111 1111 1111 1111"),
        ("card 4111-1111-1111-1111", "CREDIT_CARD", "4111-1111-1111-1111"),
        ("IBAN GB82 WEST 1234 5698 7654 32 please", "IBAN", "GB82 WEST 1234 5698 7654 32"),
        ("iban de89370400440532013000", "IBAN", "de89370400440532013000"),
        ("ssn 123-45-6789", "US_SSN", "123-45-6789"),
        ("social security number 123456789", "US_SSN", "123456789"),
        ("from 192.168.10.1 at noon", "IP_ADDRESS", "192.168.10.1"),
        ("v6 2001:db8::8a2e:370:7334 ok", "IP_ADDRESS", "2001:db8::8a2e:370:7334"),
        ("see https://example.com/a?b=1.", "URL", "https://example.com/a?b=1"),
        ("I was born on 12/03/1980.", "DATE_OF_BIRTH", "12/03/1980"),
        ("date of birth: March 4, 1975", "DATE_OF_BIRTH", "March 4, 1975"),
        ("passport no. X1234567 expired", "ID_NUMBER", "X1234567"),
        ("ship to 221B Baker Street, London", "ADDRESS", "221B Baker Street"),
    ],
)
def test_detects_each_type(text, kind, value):
    assert (kind, value) in found(text)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("4111 1111 1111 1112", "CREDIT_CARD"),  # fails Luhn
        ("GB82 WEST 1234 5698 7654 33", "IBAN"),  # fails mod-97
        ("000-12-3456", "US_SSN"),  # impossible area number
        ("version 999.1.2.3 of the tool", "IP_ADDRESS"),
        ("The meeting is on 12/03/2024.", "DATE_OF_BIRTH"),  # a date, not a birth date
        ("Sarah has 3 apples and 4 pears.", "PHONE"),
        ("In 1990 2000 people came.", "PHONE"),
    ],
)
def test_validators_reject_lookalikes(text, kind):
    assert kind not in {k for k, _ in found(text)}


def test_types_option_limits_detection():
    text = "ada@example.com, +44 20 7946 0958"
    assert found(text, types=["PHONE"]) == [("PHONE", "+44 20 7946 0958")]


def test_redaction_offsets_with_adjacent_entities_and_non_ascii():
    text = "Ünïcødé ✓ ada@example.com,bob@example.org 🎉 +44 20 7946 0958!"
    decision = check(text, "redact-pii")
    assert decision.text == "Ünïcødé ✓ <EMAIL_1>,<EMAIL_2> 🎉 <PHONE_1>!"
    for f in decision.findings:
        assert text[f.start : f.end] in ("ada@example.com", "bob@example.org", "+44 20 7946 0958")


def test_overlapping_candidates_keep_the_validated_one():
    # The card number also looks like a phone number; the Luhn-checked card wins.
    decision = check("pay with 4111 1111 1111 1111 now", "redact-pii")
    assert decision.text == "pay with <CREDIT_CARD_1> now"


def test_same_value_same_placeholder():
    decision = check("a@example.com then b@example.com then a@example.com", "redact-pii")
    assert decision.text == "<EMAIL_1> then <EMAIL_2> then <EMAIL_1>"
