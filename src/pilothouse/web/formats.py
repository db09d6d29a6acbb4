"""How numbers, times and money read in the UI (Jinja filters)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def when(value: datetime | None) -> str:
    """A timestamp in UTC, to the second."""
    if value is None:
        return "—"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def duration(ms: float | None) -> str:
    """Milliseconds as 850 ms, 1.25 s or 2m 05s."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes}m {seconds:02d}s"


def usd(value: float | None) -> str:
    """Dollars with enough digits for per-request costs."""
    if value is None:
        return "—"
    if value == 0:
        return "$0"
    if abs(value) < 0.01:
        return f"${value:.5f}".rstrip("0")
    return f"${value:,.2f}"


def count(value: float | None) -> str:
    """1,234 or 1.2k / 3.4M for large numbers."""
    if value is None:
        return "—"
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:.1f}k"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def percent(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.1f}%"


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def short(value: Any, length: int = 80) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= length else text[: length - 1] + "…"


FILTERS = {
    "when": when,
    "duration": duration,
    "usd": usd,
    "count": count,
    "percent": percent,
    "short": short,
}
