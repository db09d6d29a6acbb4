"""How numbers, times, money and stored values read in the UI (Jinja filters and globals)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson


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


def messages_of(value: Any) -> list[dict[str, Any]] | None:
    """Chat messages as a list of {role, content, ...}, or None when ``value`` is not a chat."""
    if isinstance(value, dict) and isinstance(value.get("messages"), list):
        value = value["messages"]
    if (
        isinstance(value, list)
        and value
        and all(isinstance(m, dict) and "role" in m for m in value)
    ):
        return value
    return None


def as_text(value: Any) -> str:
    """Anything stored on a span, as readable text (JSON pretty-printed)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode()


FILTERS = {
    "when": when,
    "duration": duration,
    "usd": usd,
    "count": count,
    "percent": percent,
    "short": short,
}
