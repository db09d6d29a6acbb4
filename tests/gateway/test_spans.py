"""The gateway's span of a call: long message strings are cut, short ones kept as they are."""

from __future__ import annotations

from pilothouse.gateway.spans import truncate


def test_truncate_cuts_only_strings_longer_than_the_limit():
    messages = [
        {"role": "system", "content": "short"},
        {"role": "user", "content": "x" * 30, "name": "u"},
    ]
    cut = truncate(messages, 20)
    assert cut[0] == {"role": "system", "content": "short"}
    assert cut[1]["content"] == "x" * 20 + "... [10 more]"
    assert messages[1]["content"] == "x" * 30  # the request itself is left alone


def test_truncate_keeps_small_values_and_odd_types():
    messages = [{"role": "user", "content": "hé", "n": 2**70}]  # not JSON-encodable by orjson
    assert truncate(messages, 1000) == messages
    assert truncate(messages, 0) is messages
    assert truncate([{"content": "é" * 12}], 12) == [{"content": "é" * 12}]  # 24 bytes, 12 chars
    assert truncate("abc", 2) == "ab... [1 more]"
