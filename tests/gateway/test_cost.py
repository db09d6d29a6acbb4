"""Cost per call from the genai-prices table, with deployment overrides."""

from __future__ import annotations

from datetime import date

import pytest

from pilothouse.gateway import cost


def test_known_models_priced_from_the_table():
    # gpt-4o-mini: $0.15 in / $0.60 out per million tokens.
    assert cost.price("openai", "gpt-4o-mini", 1_000_000, 0) == pytest.approx(0.15)
    assert cost.price("openai", "gpt-4o-mini", 1000, 500) == pytest.approx(0.00045)
    assert cost.price("anthropic", "claude-3-5-sonnet-latest", 1000, 500) == pytest.approx(0.0105)


def test_openai_compatible_servers_find_the_model_by_name():
    # A Groq model behind an "openai" deployment is priced as Groq's.
    by_name = cost.price("openai", "llama-3.1-8b-instant", 1_000_000, 1_000_000)
    assert by_name == cost.price("groq", "llama-3.1-8b-instant", 1_000_000, 1_000_000)
    assert by_name is not None and by_name > 0


def test_unknown_models_have_no_price_and_mock_is_free():
    assert cost.price("openai", "no-such-model-xyz", 10, 10) is None
    assert cost.price("mock", "echo", 10, 10) == 0.0


def test_overrides_win_and_fill_in_from_the_table():
    override = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
    assert cost.price("openai", "no-such-model-xyz", 1_000_000, 500_000, override) == 2.0
    assert cost.price("mock", "echo", 2_000_000, 0, override) == 2.0
    # Only the output price overridden: input comes from the table ($0.15).
    partial = cost.price("openai", "gpt-4o-mini", 1_000_000, 1_000_000, {"output_per_mtok": 1})
    assert partial == pytest.approx(1.15)


def test_lookups_are_memoized_per_model_and_day():
    cost._table.clear()
    cost.price("openai", "gpt-4o-mini", 1, 1)
    cost.price("openai", "gpt-4o-mini", 5, 5)
    cost.price("openai", "no-such-model-xyz", 1, 1)
    cost.price("openai", "no-such-model-xyz", 1, 1)
    assert len(cost._table) == 2
    assert cost.table_prices("openai", "gpt-4o-mini", date(2025, 6, 1)) == cost.Prices(0.15, 0.6)


def test_tiered_prices_use_the_packages_calculation():
    import genai_prices

    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=300_000, output_tokens=1000),
        "claude-haiku-5-5",
        provider_id="anthropic",
    ).total_price
    prices = cost.table_prices("anthropic", "claude-haiku-5-5")
    assert prices is not None and prices.tiered is not None
    assert cost.price("anthropic", "claude-haiku-5-5", 300_000, 1000) == float(expected)
