"""Guardrail tests reuse the gateway fixtures (whole app on a real socket)."""

from tests.gateway.conftest import SpanSink, make_gateway, upstream

__all__ = ["SpanSink", "make_gateway", "upstream"]
