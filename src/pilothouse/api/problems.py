"""RFC 9457 problem+json for the management API: the one place errors meet the wire."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from pilothouse.errors import PilothouseError

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://pilothouse.dev/problems/"
MEDIA_TYPE = "application/problem+json"


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    instance: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def from_error(exc: PilothouseError, instance: str | None = None) -> JSONResponse:
    errors = list(exc.errors)
    if exc.param and not errors:
        errors = [{"path": exc.param, "reason": exc.detail}]
    return problem(
        exc.status,
        exc.code,
        exc.title,
        exc.detail,
        errors=errors,
        headers=exc.headers(),
        instance=instance,
    )


def _path(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


def validation_errors(raw: Any) -> list[dict[str, Any]]:
    """FastAPI/pydantic errors as ``{"path": "body.scopes.0", "reason": "..."}``."""
    out = []
    for err in raw:
        loc = tuple(err.get("loc", ()))
        reason = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            reason = f"malformed JSON: {ctx.get('error', reason)}"
            loc = loc[:1]
        out.append({"path": _path(loc), "reason": reason, "type": err.get("type", "")})
    return out


async def _pilothouse_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PilothouseError)
    return from_error(exc, instance=request.url.path)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc.errors())
    detail = "; ".join(f"{e['path']}: {e['reason']}" for e in errors[:5])
    status = 400 if any(e["type"] == "json_invalid" for e in errors) else 422
    code = "malformed_json" if status == 400 else "validation_failed"
    title = "Malformed JSON" if status == 400 else "Validation failed"
    return problem(status, code, title, detail, errors=errors, instance=request.url.path)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, PilothouseError):
        # FastAPI wraps errors raised while reading the body (e.g. BodyLimit's PayloadTooLarge)
        # in a generic 400; answer with the original.
        return from_error(exc.__cause__, instance=request.url.path)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return problem(
        exc.status_code,
        code,
        str(exc.detail),
        str(exc.detail),
        headers=dict(exc.headers or {}),
        instance=request.url.path,
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(
        500,
        "internal_error",
        "Internal error",
        "an unexpected error occurred; it has been logged",
        instance=request.url.path,
    )


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem: what went wrong, with a stable machine code.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "description": "URI naming the kind of problem"},
        "title": {"type": "string"},
        "status": {"type": "integer", "description": "The HTTP status code"},
        "detail": {"type": "string", "description": "What went wrong, for people"},
        "code": {"type": "string", "description": "Stable machine code, e.g. not_found"},
        "instance": {"type": "string", "description": "The request path"},
        "errors": {
            "type": "array",
            "description": "Fields at fault, e.g. body.scopes.0",
            "items": {
                "type": "object",
                "required": ["path", "reason"],
                "properties": {
                    "path": {"type": "string"},
                    "reason": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}

_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _document_problems(app: FastAPI) -> None:
    """Declare the problem+json answers every operation may give in the OpenAPI document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = generate()
        doc.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        content = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path_item in doc.get("paths", {}).values():
            for method, operation in path_item.items():
                if method not in _METHODS:
                    continue
                responses = operation.setdefault("responses", {})
                if "422" in responses:  # FastAPI documents its own format; ours is a problem
                    responses["422"] = {"description": "Validation failed", "content": content}
                responses.setdefault(
                    "4XX", {"description": "Client error (problem+json)", "content": content}
                )
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    _document_problems(app)
    app.add_exception_handler(PilothouseError, _pilothouse_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
