import itertools

from hypothesis import given
from hypothesis import strategies as st

from pilothouse.guardrails import Finding, StreamRestorer, Vault
from pilothouse.guardrails.rewrite import resolve_overlaps, rewrite


def f(start: int, end: int, score: float = 0.9, kind: str = "X") -> Finding:
    return Finding("t", kind, start, end, score)


def test_overlaps_keep_higher_score_then_longer_and_adjacent_spans_stay() -> None:
    spans = [f(0, 5, 0.5), f(3, 8, 0.9), f(8, 10, 0.6), f(10, 12, 0.6), f(20, 30), f(22, 25)]
    kept = resolve_overlaps(spans)
    assert [(s.start, s.end) for s in kept] == [(3, 8), (8, 10), (10, 12), (20, 30)]


def test_rewrite_numbers_by_type_and_reuses_placeholders() -> None:
    text = "a@x.io b@x.io a@x.io 555"
    spans = [f(0, 6, kind="EMAIL"), f(7, 13, kind="EMAIL"), f(14, 20, kind="EMAIL")]
    spans.append(f(21, 24, kind="PHONE"))
    vault = Vault()
    assert rewrite(text, spans, vault) == "<EMAIL_1> <EMAIL_2> <EMAIL_1> <PHONE_1>"
    assert vault.restore("<PHONE_1>, <EMAIL_2>, <EMAIL_9>") == "555, b@x.io, <EMAIL_9>"


def test_redacted_values_get_fresh_unrestorable_placeholders() -> None:
    vault = Vault()
    keep_one = f(0, 3, kind="A")
    out = rewrite("abc abc", [keep_one, f(4, 7, kind="A")], vault, keep={id(keep_one)})
    assert out == "<A_1> <A_2>"
    assert vault.restore(out) == "abc <A_2>"


@given(
    st.lists(
        st.sampled_from(["Hi ", "<EMAIL_1>", "<PHONE_2>", " and ", "<", "EMAIL", "_1", ">", "é🎉"]),
        max_size=20,
    ),
    st.lists(st.integers(min_value=0, max_value=200), max_size=10),
)
def test_stream_restorer_matches_whole_text_restore(pieces: list[str], cuts: list[int]) -> None:
    vault = Vault()
    vault.placeholder("EMAIL", "ada@example.com")
    vault.placeholder("PHONE", "x")
    vault.placeholder("PHONE", "+44 20 7946 0958")
    text = "".join(pieces)
    points = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    restorer = StreamRestorer(vault)
    out = "".join(restorer.feed(text[a:b]) for a, b in itertools.pairwise(points))
    out += restorer.flush()
    assert out == vault.restore(text)
