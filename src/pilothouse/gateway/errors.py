"""OpenAI-style error JSON for ``/v1``: the one place gateway errors meet the wire.

The official SDKs pick their exception class from the HTTP status (400 BadRequestError, 401
AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError, 422
UnprocessableEntityError, 429 RateLimitError, 5xx InternalServerError), so the status comes
from the :mod:`pilothouse.errors` tree and the body follows OpenAI's
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import orjson

from pilothouse.errors import BudgetExceeded, PilothouseError

#: OpenAI's ``error.type`` for each status.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    405: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


def error_type(exc: PilothouseError) -> str:
    if isinstance(exc, BudgetExceeded):
        return "insufficient_quota"
    return _TYPES.get(exc.status, "server_error")


def error_body(exc: PilothouseError) -> dict[str, object]:
    """The ``{"error": {...}}`` document for one error."""
    param = exc.param
    if param is None and exc.errors:
        param = str(exc.errors[0].get("path")) if exc.errors[0].get("path") else None
    return {
        "error": {
            "message": exc.detail,
            "type": error_type(exc),
            "param": param,
            "code": exc.code,
        }
    }


def error_response(exc: PilothouseError) -> tuple[int, bytes, dict[str, str]]:
    """Status, JSON body and extra headers (``Retry-After``) for one error."""
    return exc.status, orjson.dumps(error_body(exc)), exc.headers()


def sse_error(exc: PilothouseError) -> bytes:
    """An error sent inside a stream that already started (the status is already 200)."""
    return b"data: " + orjson.dumps(error_body(exc)) + b"\n\n"


class MethodNotAllowed(PilothouseError):
    """A ``/v1`` route called with the wrong HTTP method."""

    status = 405
    code = "method_not_allowed"
    title = "Method not allowed"
