"""Providers: built-ins ``openai``, ``anthropic``, ``mock``; others via ``register_providers``."""

from pilothouse.gateway.providers.base import AttemptFailed, Provider

__all__ = ["AttemptFailed", "Provider"]
