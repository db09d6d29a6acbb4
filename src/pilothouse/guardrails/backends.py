"""Optional, process-wide backends of some checks (an embedder, a name recognizer).

Each is configured by a spec string in the ``guardrails:`` section of ``pilothouse.yaml``
(loaded once per value), or set in Python; without one, the checks use their fallbacks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from pilothouse.errors import ConfigError, PilothouseError

T = TypeVar("T")


def load_reference(key: str, spec: str) -> Callable[..., object]:
    """``package.module:function`` (a class is instantiated), or ConfigError naming ``key``."""
    from pilothouse.evals.evaluators import load_function

    try:
        return load_function(spec)
    except PilothouseError as exc:
        raise ConfigError(f"{key}: {exc.detail}") from None


class Backend(Generic[T]):
    """One optional backend: ``get()`` it, ``set()`` it, or ``configure(spec)`` it."""

    def __init__(self, key: str, load: Callable[[str], T]) -> None:
        self.key = key
        self.load = load
        self.value: T | None = None
        self.spec = ""

    def get(self) -> T | None:
        return self.value

    def set(self, value: T | None, spec: str = "") -> None:
        self.value, self.spec = value, spec

    def configure(self, spec: str) -> None:
        """Use the backend ``spec`` names (loaded once per value); an empty spec leaves one set
        in Python in place."""
        spec = spec.strip()
        if spec and (self.value is None or self.spec != spec):
            self.set(self.load(spec), spec)

    @contextlib.contextmanager
    def using(self, value: T | None) -> Iterator[None]:
        """Use ``value`` within a ``with`` block (tests, scripts)."""
        before = self.value, self.spec
        self.set(value)
        try:
            yield
        finally:
            self.value, self.spec = before


__all__ = ["Backend", "load_reference"]
