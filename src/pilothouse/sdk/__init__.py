"""The Python SDK for applications: prompts from the registry (:mod:`pilothouse.sdk.prompts`)
and tracing (:mod:`pilothouse.sdk.tracing`: ``observe``, ``trace``, ``span``, ``score``...)."""

from typing import Any

#: Tracing functions re-exported here, imported on first use (they need opentelemetry-sdk).
_TRACING = (
    "configure",
    "current_trace_id",
    "flush",
    "instrument_openai",
    "observe",
    "score",
    "set_trace",
    "span",
    "trace",
    "uninstrument_openai",
)


def __getattr__(name: str) -> Any:
    if name in _TRACING:
        from pilothouse.sdk import tracing

        return getattr(tracing, name)
    raise AttributeError(f"module 'pilothouse.sdk' has no attribute {name!r}")
