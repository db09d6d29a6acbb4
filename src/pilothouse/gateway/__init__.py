"""The OpenAI-compatible LLM gateway under ``/v1``.

Request path: :mod:`.app` (ASGI, auth, parsing) -> hooks (:mod:`.call`) -> :mod:`.router`
(deployments, retries, fallbacks, circuit breaker) -> :mod:`.providers` (openai, anthropic,
mock) through one outbound HTTP seam (:mod:`.http`). Every call becomes a trace span
(:mod:`.spans`). Configuration lives in :mod:`.config`.
"""
