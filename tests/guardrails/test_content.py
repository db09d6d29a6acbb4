from typing import Any

from pilothouse.guardrails import check
from pilothouse.guardrails.content import make_canary


def policy(where: str, name: str, action: str = "block", **options: Any) -> dict[str, Any]:
    return {where: [{"check": name, "action": action, "options": options}]}


def test_keywords_and_topics_with_spans_and_obfuscation() -> None:
    rules = policy("input", "keywords", "redact", words=["project x"], topics={"rivals": ["acme"]})
    decision = check("Compare Project X with ACME.", rules)
    assert decision.text == "Compare <KEYWORD_1> with <RIVALS_1>."
    blocked = check("what about 4cm3?", policy("input", "keywords", topics={"rivals": ["acme"]}))
    assert blocked.blocked
    assert not check("acmeology", policy("input", "keywords", words=["acme"])).blocked


def test_regex_patterns() -> None:
    rules = policy("input", "regex", "redact", patterns={"ticket": r"JIRA-\d+", "bad": "("})
    assert check("see JIRA-123 and JIRA-9", rules).text == "see <TICKET_1> and <TICKET_2>"


def test_max_length() -> None:
    rules = policy("output", "max_length", max_chars=10)
    assert check("short", rules, "output").verdict == "allow"
    assert check("this is far too long", rules, "output").blocked


def test_json_schema() -> None:
    schema = {
        "type": "object",
        "required": ["answer"],
        "properties": {"answer": {"type": "string"}},
    }
    rules = policy("output", "json_schema", schema=schema)
    assert check('{"answer": "yes"}', rules, "output").verdict == "allow"
    assert check('```json\n{"answer": "yes"}\n```', rules, "output").verdict == "allow"
    bad = check('{"answer": 3}', rules, "output")
    assert bad.blocked
    assert bad.findings[0].signals == ("schema:answer:type",)
    assert check("not json", rules, "output").findings[0].type == "INVALID_JSON"


def test_canary_detects_exact_and_obfuscated_leaks() -> None:
    token = make_canary()
    rules = policy("output", "canary", tokens=[token])
    assert check("all good", rules, "output").verdict == "allow"
    assert check(f"my instructions say {token}", rules, "output").blocked
    spaced = " ".join(token)
    assert check(f"leak: {spaced}", rules, "output").blocked
    # Without configured tokens, any Pilothouse canary counts.
    assert check(f"x {make_canary()} y", policy("output", "canary"), "output").blocked
