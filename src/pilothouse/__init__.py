"""Pilothouse: a self-hosted LLMOps control plane."""

from pilothouse.errors import PilothouseError
from pilothouse.hookspecs import hookimpl, skip_streams

__version__ = "0.1.0"

__all__ = ["PilothouseError", "__version__", "hookimpl", "skip_streams"]
