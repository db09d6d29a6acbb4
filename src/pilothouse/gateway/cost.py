"""The USD cost of a call, from the maintained ``genai-prices`` table or a deployment's override.

Looking a model up in ``genai-prices`` takes tens of microseconds, so the per-token prices of
each (provider, model) are resolved once per UTC day (prices can change on a date) and a call's
cost is then two multiplications. Models with tiered prices (by prompt length) go through the
package's own calculation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import genai_prices
from genai_prices import data_snapshot

log = logging.getLogger(__name__)

#: Providers whose calls cost nothing (answered locally).
FREE_PROVIDERS = frozenset({"mock"})


@dataclass(frozen=True)
class Prices:
    """USD per million input and output tokens of one model; ``tiered`` needs the package."""

    input_per_mtok: float
    output_per_mtok: float
    tiered: Any = None


_table: dict[tuple[str, str, date], Prices | None] = {}


def _find(provider: str, model: str) -> tuple[Any, Any] | None:
    snapshot = data_snapshot.get_snapshot()
    for provider_id in (provider or None, None):
        try:
            return snapshot.find_provider_model(model, None, provider_id, None)
        except LookupError:
            continue
    # An "openai" deployment may point at any OpenAI-compatible server (Groq, Together...):
    # when neither the provider nor the name's pattern knows the model, ask every provider.
    for candidate in snapshot.providers:
        found = candidate.find_model(model)
        if found is not None:
            return candidate, found
    return None


def _lookup(provider: str, model: str, day: date) -> Prices | None:
    found = _find(provider, model)
    if found is None:
        return None
    found_provider, model_info = found
    model_price = model_info.get_prices(datetime(day.year, day.month, day.day, 12, tzinfo=UTC))
    input_price = getattr(model_price, "input_mtok", None)
    output_price = getattr(model_price, "output_mtok", None)
    if isinstance(input_price, Decimal | None) and isinstance(output_price, Decimal | None):
        return Prices(float(input_price or 0), float(output_price or 0))
    log.debug("tiered prices for %s/%s", found_provider.id, model_info.id)
    return Prices(0.0, 0.0, tiered=(found_provider, model_info))


_today: tuple[float, date] = (0.0, date.min)  # (when the UTC day ends, the day)


def _utc_today() -> date:
    """Today's UTC date, recomputed only when the day changes."""
    global _today
    now = time.time()
    if now < _today[0]:
        return _today[1]
    day = datetime.fromtimestamp(now, UTC).date()
    _today = ((now // 86_400 + 1) * 86_400, day)
    return day


def table_prices(provider: str, model: str, today: date | None = None) -> Prices | None:
    """The table's prices of ``model`` at ``provider`` (memoized), or None if unknown."""
    day = today or _utc_today()
    key = (provider, model, day)
    try:
        return _table[key]
    except KeyError:
        pass
    if len(_table) > 10_000:
        _table.clear()
    found = _table[key] = _lookup(provider, model, day)
    return found


def price(
    provider: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    override: Mapping[str, Any] | None = None,
) -> float | None:
    """USD cost of one call, or None when the model's price is unknown.

    ``override`` (a deployment's ``price``) holds ``input_per_mtok`` and/or
    ``output_per_mtok`` in USD; a missing one falls back to the table (or 0).
    """
    if provider in FREE_PROVIDERS and not override:
        return 0.0
    prices = table_prices(provider, model)
    if override:
        base = prices if prices is not None and prices.tiered is None else Prices(0.0, 0.0)
        prices = Prices(
            float(override.get("input_per_mtok", base.input_per_mtok)),
            float(override.get("output_per_mtok", base.output_per_mtok)),
        )
    if prices is None:
        return None
    if prices.tiered is not None:
        found_provider, model_info = prices.tiered
        usage = genai_prices.Usage(input_tokens=input_tokens, output_tokens=output_tokens)
        return float(model_info.calc_price(usage, found_provider).total_price)
    return (input_tokens * prices.input_per_mtok + output_tokens * prices.output_per_mtok) / 1e6


__all__ = ["FREE_PROVIDERS", "Prices", "price", "table_prices"]
