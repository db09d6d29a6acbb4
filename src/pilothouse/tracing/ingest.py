"""OTLP/HTTP trace ingestion: ``POST /v1/traces`` and ``POST /api/otel/v1/traces``.

The response is sent only after the spans are committed. Errors are written here, in one place,
as OTLP asks: a ``google.rpc.Status`` in the request's encoding, with ``Retry-After`` on 429/503
(which OTLP exporters honour by retrying).
"""

from __future__ import annotations

import base64
import binascii
import logging

import orjson
from google.rpc import status_pb2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pilothouse.errors import PilothouseError, Unauthorized
from pilothouse.identity.keys import ApiKey
from pilothouse.runtime import Runtime
from pilothouse.tracing import otlp

log = logging.getLogger(__name__)

PATHS = ("/v1/traces", "/api/otel/v1/traces")

#: HTTP status -> gRPC status code carried in the error body
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 413: 8, 415: 3, 422: 3, 429: 8, 503: 14}


def api_key_of(request: Request, runtime: Runtime, scope: str = "ingest") -> ApiKey:
    """The API key of ``Authorization: Bearer <key>`` or HTTP Basic (the key as password)."""
    return key_of_authorization(request.headers.get("authorization", ""), runtime, scope)


def key_of_authorization(header: str, runtime: Runtime, scope: str = "ingest") -> ApiKey:
    """The API key an ``Authorization`` header value carries (Bearer, or Basic's password)."""
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    key = ""
    if scheme.lower() == "bearer":
        key = credentials
    elif scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(credentials).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("malformed Basic credentials", code="invalid_credentials") from None
        key = password or user
    if not key:
        raise Unauthorized(
            "missing credentials: send 'Authorization: Bearer <API key>' with the ingest scope",
            code="missing_credentials",
        )
    return runtime.keys.verify(key, scope)


def error_response(exc: PilothouseError, media: str) -> Response:
    """An OTLP error: ``google.rpc.Status`` in the request's encoding."""
    code = _GRPC_CODES.get(exc.status, 13)
    if media == otlp.PROTOBUF:
        body = status_pb2.Status(code=code, message=exc.detail).SerializeToString()
    else:
        body = orjson.dumps({"code": code, "message": exc.detail, "error": exc.code})
    return Response(body, status_code=exc.status, headers=exc.headers(), media_type=media)


async def export(request: Request) -> Response:
    """Receive one ``ExportTraceServiceRequest``; answer once its spans are committed."""
    runtime: Runtime = request.app.state.runtime
    media = otlp.JSON
    try:
        key = api_key_of(request, runtime)
        media = otlp.media_type(request.headers.get("content-type"))
        body = await request.body()
        body = otlp.decompress(
            body,
            request.headers.get("content-encoding"),
            runtime.settings.otlp_max_decompressed_bytes,
        )
        decoded = otlp.decode(body, media, key.project_id)
        await runtime.traces.write(decoded.spans)
    except PilothouseError as exc:
        if exc.status >= 500:
            log.warning("OTLP export refused: %s", exc.detail)
        return error_response(exc, media)
    return Response(
        otlp.encode_response(decoded.rejected, decoded.error_message, media),
        media_type=media,
    )


def routes() -> list[Route]:
    return [
        Route(path, export, methods=["POST"], name=f"otlp_traces_{i}")
        for i, path in enumerate(PATHS)
    ]


__all__ = ["PATHS", "api_key_of", "error_response", "export", "key_of_authorization", "routes"]
