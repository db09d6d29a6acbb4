import pytest

from pilothouse.guardrails import check, toxicity


def kind(text: str) -> str | None:
    found = [f for f in toxicity.scan(text, "input", {}) if f.score >= 0.5]
    return found[0].type if found else None


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("you are a fucking idiot", "INSULT"),
        ("I will kill you tomorrow", "THREAT"),
        ("what a piece of sh1t", "PROFANITY"),
    ],
)
def test_lexicon_categories(text: str, category: str) -> None:
    assert kind(text) == category


@pytest.mark.parametrize(
    "text",
    [
        "How can I kill a Python process?",
        "The trash goes out on Tuesdays.",
        "Please write a polite reply to this customer.",
    ],
)
def test_clean_text_passes(text: str) -> None:
    assert kind(text) is None


def test_categories_option_and_strict_policy() -> None:
    assert (
        toxicity.scan("I will kill you", "input", {"categories": ["sexual"], "classifier": False})
        == []
    )
    assert check("you stupid moron", "strict").blocked_by == "toxicity"
