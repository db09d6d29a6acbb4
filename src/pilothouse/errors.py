"""The one exception tree of Pilothouse.

Every error a client can see is one of these. Each class carries its HTTP status and a stable
machine ``code``; :mod:`pilothouse.api.problems` (problem+json on ``/api``) and the gateway's
OpenAI-style error writer turn them into the wire format in one place each.

PilothouseError
 ├─ ConfigError                 (a setting or config file is wrong; fails at start)
 ├─ BadRequest (400)
 │   ├─ ValidationFailed (422)  (fields with paths and reasons)
 │   ├─ PayloadTooLarge (413)
 │   ├─ UnsupportedMediaType (415)
 │   └─ GuardrailBlocked (400)
 ├─ Unauthorized (401)
 ├─ Forbidden (403)
 ├─ NotFound (404)
 ├─ Conflict (409)
 ├─ RateLimited (429, retry_after)
 │   └─ BudgetExceeded (429)
 ├─ UpstreamError (502)
 │   └─ UpstreamTimeout (504)
 └─ Unavailable (503, retry_after)
"""

from __future__ import annotations

from typing import Any


class PilothouseError(Exception):
    """Base of every Pilothouse error."""

    status: int = 500
    code: str = "internal_error"
    title: str = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        param: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.param = param
        self.errors = errors or []
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        """Extra response headers this error asks for (e.g. ``Retry-After``)."""
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, round(self.retry_after + 0.499)))}


class ConfigError(PilothouseError):
    """A setting or configuration file is invalid; reported at start as one line."""

    code = "config_error"
    title = "Configuration error"


class BadRequest(PilothouseError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class ValidationFailed(BadRequest):
    """The body or parameters do not match the schema; ``errors`` lists path and reason."""

    status = 422
    code = "validation_failed"
    title = "Validation failed"


class PayloadTooLarge(BadRequest):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaType(BadRequest):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class GuardrailBlocked(BadRequest):
    code = "guardrail_blocked"
    title = "Blocked by a guardrail"


class Unauthorized(PilothouseError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class Forbidden(PilothouseError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(PilothouseError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(PilothouseError):
    status = 409
    code = "conflict"
    title = "Conflict"


class RateLimited(PilothouseError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"


class BudgetExceeded(RateLimited):
    code = "budget_exceeded"
    title = "Budget exceeded"


class UpstreamError(PilothouseError):
    status = 502
    code = "upstream_error"
    title = "Upstream error"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"
    title = "Upstream timeout"


class Unavailable(PilothouseError):
    status = 503
    code = "unavailable"
    title = "Service unavailable"


__all__ = [
    "BadRequest",
    "BudgetExceeded",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "GuardrailBlocked",
    "NotFound",
    "PayloadTooLarge",
    "PilothouseError",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "UpstreamError",
    "UpstreamTimeout",
    "ValidationFailed",
]
