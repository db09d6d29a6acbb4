"""Python experiment targets for the evaluation pages' tests."""

from __future__ import annotations

from typing import Any

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Peru": "Lima", "Kenya": "Nairobi"}


def right(value: Any) -> str:
    return CAPITALS[value["country"]]


def sloppy(value: Any) -> str:
    """Wrong for Japan and Peru."""
    country = value["country"]
    return "Kyoto" if country == "Japan" else "Cusco" if country == "Peru" else CAPITALS[country]
