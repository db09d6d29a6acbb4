"""OTLP/gRPC trace receiver (``TraceService/Export``), on ``otlp_grpc_port`` when enabled.

Same contract as OTLP/HTTP: the API key (``authorization: Bearer <key>`` metadata, ``ingest``
scope) picks the project, the answer is sent once the spans are committed, and errors map to
gRPC codes that OTLP exporters understand (UNAVAILABLE and RESOURCE_EXHAUSTED are retried).
Needs ``grpcio`` (the ``grpc`` extra).
"""

from __future__ import annotations

import logging
from concurrent import futures
from typing import TYPE_CHECKING, Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from pilothouse.errors import ConfigError, PilothouseError
from pilothouse.tracing import otlp
from pilothouse.tracing.ingest import key_of_authorization

if TYPE_CHECKING:
    from pilothouse.runtime import Runtime

log = logging.getLogger(__name__)

#: Seconds an export may wait for its commit before the client is told to retry.
COMMIT_TIMEOUT = 60.0


def _status_codes() -> dict[int, Any]:
    import grpc

    c = grpc.StatusCode
    return {
        400: c.INVALID_ARGUMENT,
        401: c.UNAUTHENTICATED,
        403: c.PERMISSION_DENIED,
        404: c.NOT_FOUND,
        413: c.RESOURCE_EXHAUSTED,
        415: c.INVALID_ARGUMENT,
        422: c.INVALID_ARGUMENT,
        429: c.RESOURCE_EXHAUSTED,
        503: c.UNAVAILABLE,
    }


class TraceService:
    """The ``opentelemetry.proto.collector.trace.v1.TraceService`` servicer."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.codes = _status_codes()

    def Export(  # the gRPC method name
        self, request: ExportTraceServiceRequest, context: Any
    ) -> ExportTraceServiceResponse:
        metadata = {k.lower(): v for k, v in context.invocation_metadata()}
        try:
            key = key_of_authorization(str(metadata.get("authorization", "")), self.runtime)
            decoded = otlp.decode_message(request, key.project_id)
            self.runtime.traces.write_sync(decoded.spans, timeout=COMMIT_TIMEOUT)
        except PilothouseError as exc:
            import grpc

            context.abort(self.codes.get(exc.status, grpc.StatusCode.INTERNAL), exc.detail)
            raise AssertionError("unreachable: abort raises") from exc
        response = ExportTraceServiceResponse()
        if decoded.rejected:
            response.partial_success.rejected_spans = decoded.rejected
            response.partial_success.error_message = decoded.error_message
        return response


def start(runtime: Runtime) -> Any:
    """Start the receiver on ``host:otlp_grpc_port``; returns the grpc server."""
    try:
        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
    except ImportError:
        raise ConfigError(
            "PILOTHOUSE_OTLP_GRPC_ENABLED=true needs grpcio: pip install 'pilothouse[grpc]'"
        ) from None
    settings = runtime.settings
    limit = settings.otlp_max_decompressed_bytes
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="otlp-grpc"),
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ],
        compression=None,
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        TraceService(runtime), server
    )
    address = f"{settings.host}:{settings.otlp_grpc_port}"
    if server.add_insecure_port(address) == 0:
        raise ConfigError(f"PILOTHOUSE_OTLP_GRPC_PORT: cannot listen on {address}")
    server.start()
    log.info("OTLP/gRPC receiver on %s", address)
    return server


def stop(server: Any, grace: float = 5.0) -> None:
    server.stop(grace).wait(grace + 1)


__all__ = ["TraceService", "start", "stop"]
