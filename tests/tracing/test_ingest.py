"""OTLP/HTTP ingestion end to end: the OpenTelemetry SDK's exporters against a real socket."""

from __future__ import annotations

import base64
import gzip
import os
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from pilothouse.runtime import Runtime
from pilothouse.store import traces as store
from tests.conftest import ADMIN_KEY, LiveServer

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
RESOURCE = Resource.create(
    {"service.name": "shop-assistant", "deployment.environment.name": "test"}
)


@pytest.fixture
def api(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, headers=AUTH, timeout=30) as client:
        yield client


def emit_rag_trace(provider: TracerProvider) -> tuple[str, str]:
    """A small agent trace: root (OpenInference), an LLM call (GenAI semconv), a tool."""
    tracer = provider.get_tracer("tests.tracing", "1.0")
    with tracer.start_as_current_span(
        "agent.run",
        attributes={
            "openinference.span.kind": "AGENT",
            "session.id": "conv-1",
            "user.id": "user-7",
            "tag.tags": ["beta", "support"],
            "input.value": "Where is my order 42?",
            "output.value": "It ships tomorrow.",
        },
    ) as root:
        with tracer.start_as_current_span(
            "chat gpt-4o-mini",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 30,
                "gen_ai.input.messages": orjson.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": "order 42?"}]}]
                ).decode(),
                "gen_ai.output.messages": orjson.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": "tomorrow"}]}]
                ).decode(),
                "custom.flag": True,
            },
        ) as llm:
            pass
        with tracer.start_as_current_span(
            "tool lookup_order", attributes={"gen_ai.operation.name": "execute_tool"}
        ) as tool:
            tool.set_status(Status(StatusCode.ERROR, "order service timed out"))
    assert llm and tool
    return format(root.get_span_context().trace_id, "032x"), format(
        root.get_span_context().span_id, "016x"
    )


def check_rag_trace(api: httpx.Client, trace_id: str) -> dict[str, Any]:
    response = api.get(f"/api/traces/{trace_id}")
    assert response.status_code == 200, response.text
    trace: dict[str, Any] = response.json()
    assert trace["name"] == "agent.run"
    assert trace["span_count"] == 3
    assert trace["error_count"] == 1 and trace["status"] == "error"
    assert trace["session_id"] == "conv-1" and trace["user_id"] == "user-7"
    assert trace["tags"] == ["beta", "support"]
    assert trace["model"] == "gpt-4o-mini" and trace["provider"] == "openai"
    assert (trace["input_tokens"], trace["output_tokens"]) == (120, 30)
    assert trace["input"] == "Where is my order 42?"
    assert trace["environment"] == "test" and trace["service_name"] == "shop-assistant"
    [root] = trace["spans"]
    assert root["operation"] == "agent" and root["parent_span_id"] is None
    llm, tool = root["children"]
    assert llm["name"] == "chat gpt-4o-mini" and llm["kind"] == "client"
    assert llm["operation"] == "chat"
    assert llm["request_model"] == "gpt-4o-mini"
    assert llm["response_model"] == "gpt-4o-mini-2024-07-18"
    assert llm["input"] == [{"role": "user", "content": "order 42?"}]
    assert llm["output"] == [{"role": "assistant", "content": "tomorrow"}]
    assert llm["attributes"]["custom.flag"] is True  # unknown attributes kept verbatim
    assert llm["offset_ms"] >= 0 and llm["duration_ms"] >= 0
    assert tool["operation"] == "tool" and tool["status_code"] == "error"
    assert tool["status_message"] == "order service timed out"
    assert root["resource"]["service.name"] == "shop-assistant"
    assert root["scope"] == {"name": "tests.tracing", "version": "1.0"}
    return trace


def test_sdk_protobuf_exporter_round_trip(live_server: LiveServer, api: httpx.Client):
    exporter = OTLPSpanExporter(endpoint=f"{live_server.url}/v1/traces", headers=AUTH)
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace_id, _ = emit_rag_trace(provider)
    provider.shutdown()
    check_rag_trace(api, trace_id)
    listed = api.get("/api/traces", params={"model": "gpt-4o-mini", "session_id": "conv-1"})
    assert [t["trace_id"] for t in listed.json()["data"]] == [trace_id]


def test_sdk_exporter_on_the_api_path_with_basic_auth_and_gzip(
    live_server: LiveServer, api: httpx.Client
):
    from opentelemetry.exporter.otlp.proto.http import Compression

    basic = base64.b64encode(f"public:{ADMIN_KEY}".encode()).decode()
    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.url}/api/otel/v1/traces",
        headers={"Authorization": f"Basic {basic}"},
        compression=Compression.Gzip,
    )
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace_id, _ = emit_rag_trace(provider)
    provider.shutdown()
    check_rag_trace(api, trace_id)


def sdk_spans() -> tuple[list[ReadableSpan], str]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace_id, _ = emit_rag_trace(provider)
    provider.shutdown()
    return list(memory.get_finished_spans()), trace_id


def otlp_json(spans: list[ReadableSpan], snake_case: bool = False) -> dict[str, Any]:
    """The SDK's spans in the OTLP/JSON mapping: lowerCamelCase (or snake_case), hex ids."""
    as_dict = json_format.MessageToDict(encode_spans(spans), preserving_proto_field_name=snake_case)

    def hexify(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key in (
                    "traceId",
                    "spanId",
                    "parentSpanId",
                    "trace_id",
                    "span_id",
                    "parent_span_id",
                ):
                    value = base64.b64decode(value).hex()
                out[key] = hexify(value)
            return out
        if isinstance(node, list):
            return [hexify(v) for v in node]
        return node

    return hexify(as_dict)  # type: ignore[no-any-return]


@pytest.mark.parametrize("snake_case", [False, True], ids=["camelCase", "snake_case"])
def test_otlp_json_round_trip(api: httpx.Client, snake_case: bool):
    spans, trace_id = sdk_spans()
    body = orjson.dumps(otlp_json(spans, snake_case))
    response = api.post("/v1/traces", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    check_rag_trace(api, trace_id)


def test_json_with_base64_ids_from_protobufs_printer_is_accepted(api: httpx.Client):
    spans, trace_id = sdk_spans()
    body = json_format.MessageToJson(encode_spans(spans))
    response = api.post(
        "/v1/traces",
        content=gzip.compress(body.encode()),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    check_rag_trace(api, trace_id)


def test_resending_the_same_spans_is_idempotent(api: httpx.Client, runtime: Runtime):
    spans, trace_id = sdk_spans()
    body = encode_spans(spans).SerializeToString()
    headers = {"Content-Type": "application/x-protobuf"}
    for _ in range(3):
        response = api.post("/v1/traces", content=body, headers=headers)
        assert response.status_code == 200, response.text
        assert (
            ExportTraceServiceResponse.FromString(response.content).partial_success.rejected_spans
            == 0
        )
    trace = check_rag_trace(api, trace_id)
    assert trace["input_tokens"] == 120  # summaries counted once
    with runtime.db.read() as conn:
        assert store.count_spans(conn) == 3
    aggregates = api.get("/api/traces/aggregates", params={"group_by": "model"}).json()
    assert [(r["value"], r["count"]) for r in aggregates["totals"]] == [("gpt-4o-mini", 1)]


def raw_span(**overrides: Any) -> trace_pb2.Span:
    fields: dict[str, Any] = {
        "trace_id": os.urandom(16),
        "span_id": os.urandom(8),
        "name": "raw",
        "start_time_unix_nano": 1_700_000_000_000_000_000,
        "end_time_unix_nano": 1_700_000_000_500_000_000,
    }
    fields.update(overrides)
    return trace_pb2.Span(**fields)


def request_of(*spans: trace_pb2.Span) -> bytes:
    request = ExportTraceServiceRequest(
        resource_spans=[trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=spans)])]
    )
    return bytes(request.SerializeToString())


PB = {"Content-Type": "application/x-protobuf"}


def stored(runtime: Runtime) -> int:
    with runtime.db.read() as conn:
        return store.count_spans(conn)


def test_partial_success_reports_rejected_spans(api: httpx.Client, runtime: Runtime):
    good = raw_span()
    no_start = raw_span(start_time_unix_nano=0)
    backwards = raw_span(end_time_unix_nano=1)
    response = api.post("/v1/traces", content=request_of(good, no_start, backwards), headers=PB)
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 2
    assert "start_time_unix_nano" in partial.error_message
    assert "ends before it starts" in partial.error_message
    assert stored(runtime) == 1


@pytest.mark.parametrize(
    ("body", "headers", "status", "reason"),
    [
        (b"\x0a\xff\xff\xff", PB, 400, "not an OTLP"),
        (b"{not json", {"Content-Type": "application/json"}, 400, "not valid JSON"),
        (b'{"resourceSpans": 5}', {"Content-Type": "application/json"}, 400, "must be an array"),
        (b"hello", {"Content-Type": "text/plain"}, 415, "not supported"),
        (b"hello", {}, 415, "not supported"),
        (b"xx", PB | {"Content-Encoding": "br"}, 415, "Content-Encoding"),
        (b"not gzip", PB | {"Content-Encoding": "gzip"}, 400, "gzip"),
    ],
)
def test_malformed_requests_are_refused_with_a_reason(
    api: httpx.Client,
    runtime: Runtime,
    body: bytes,
    headers: dict[str, str],
    status: int,
    reason: str,
):
    response = api.post("/v1/traces", content=body, headers=headers)
    assert response.status_code == status, response.text
    if response.headers["content-type"] == "application/json":
        assert reason in response.json()["message"]
    assert stored(runtime) == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"trace_id": b"\x01" * 15},
        {"trace_id": b"\x00" * 16},
        {"span_id": b"\x02" * 9},
        {"parent_span_id": b"\x03" * 4},
    ],
)
def test_a_bad_id_refuses_the_whole_request(
    api: httpx.Client, runtime: Runtime, bad: dict[str, bytes]
):
    response = api.post("/v1/traces", content=request_of(raw_span(), raw_span(**bad)), headers=PB)
    assert response.status_code == 400
    from google.rpc import status_pb2

    message = status_pb2.Status.FromString(response.content).message
    assert "invalid" in message and "spans[1]" in message
    assert stored(runtime) == 0


def test_bad_hex_id_in_json_is_refused(api: httpx.Client, runtime: Runtime):
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "zz" * 16,
                                "spanId": "ab" * 8,
                                "name": "x",
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": "1700000000100000000",
                            }
                        ]
                    }
                ]
            }
        ]
    }
    response = api.post("/v1/traces", json=body)
    assert response.status_code == 400
    assert "invalid trace_id" in response.json()["message"]
    assert stored(runtime) == 0


def test_oversized_bodies_are_refused(tmp_path: Any, database_url: str):
    from pilothouse.app import create_app
    from tests.conftest import make_settings

    settings = make_settings(
        tmp_path, database_url, max_body_bytes=2000, otlp_max_decompressed_bytes=4000
    )
    rt = Runtime(settings)
    rt.migrate()
    rt.bootstrap()
    try:
        with (
            LiveServer(create_app(rt)) as server,
            httpx.Client(base_url=server.url, headers=AUTH) as client,
        ):
            big = request_of(*(raw_span(name="x" * 100) for _ in range(30)))
            assert len(big) > 2000
            response = client.post("/v1/traces", content=big, headers=PB)
            assert response.status_code == 413
            bomb = gzip.compress(request_of(*(raw_span(name="y" * 200) for _ in range(40))))
            assert len(bomb) < 2000
            response = client.post(
                "/v1/traces", content=bomb, headers=PB | {"Content-Encoding": "gzip"}
            )
            assert response.status_code == 413
            assert stored(rt) == 0
    finally:
        rt.db.close()


def test_credentials_and_scope_are_checked(api: httpx.Client, runtime: Runtime):
    body = request_of(raw_span())
    response = httpx.post(api.base_url.join("/v1/traces"), content=body, headers=PB)
    assert response.status_code == 401
    response = httpx.post(
        api.base_url.join("/v1/traces"),
        content=body,
        headers=PB | {"Authorization": "Bearer ph-not-a-key"},
    )
    assert response.status_code == 401
    reader, _ = runtime.keys.create(1, "reader", ["read"])
    response = httpx.post(
        api.base_url.join("/v1/traces"),
        content=body,
        headers=PB | {"Authorization": f"Bearer {reader}"},
    )
    assert response.status_code == 403
    assert stored(runtime) == 0


def test_any_value_kinds_are_decoded(api: httpx.Client):
    span = raw_span(
        attributes=[
            common_pb2.KeyValue(key="s", value=common_pb2.AnyValue(string_value="x")),
            common_pb2.KeyValue(key="i", value=common_pb2.AnyValue(int_value=7)),
            common_pb2.KeyValue(key="d", value=common_pb2.AnyValue(double_value=0.5)),
            common_pb2.KeyValue(key="b", value=common_pb2.AnyValue(bool_value=True)),
            common_pb2.KeyValue(key="raw", value=common_pb2.AnyValue(bytes_value=b"\x01\x02")),
            common_pb2.KeyValue(
                key="list",
                value=common_pb2.AnyValue(
                    array_value=common_pb2.ArrayValue(
                        values=[
                            common_pb2.AnyValue(string_value="a"),
                            common_pb2.AnyValue(int_value=1),
                        ]
                    )
                ),
            ),
            common_pb2.KeyValue(
                key="map",
                value=common_pb2.AnyValue(
                    kvlist_value=common_pb2.KeyValueList(
                        values=[
                            common_pb2.KeyValue(
                                key="k", value=common_pb2.AnyValue(string_value="v")
                            )
                        ]
                    )
                ),
            ),
        ]
    )
    assert api.post("/v1/traces", content=request_of(span), headers=PB).status_code == 200
    trace = api.get(f"/api/traces/{span.trace_id.hex()}").json()
    assert trace["spans"][0]["attributes"] == {
        "s": "x",
        "i": 7,
        "d": 0.5,
        "b": True,
        "raw": "AQI=",
        "list": ["a", 1],
        "map": {"k": "v"},
    }


def test_sdk_grpc_exporter_round_trip(tmp_path: Any, database_url: str):
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcSpanExporter,
    )

    from pilothouse.app import create_app
    from tests.conftest import free_port, make_settings

    grpc_port = free_port()
    settings = make_settings(
        tmp_path, database_url, otlp_grpc_enabled=True, otlp_grpc_port=grpc_port
    )
    rt = Runtime(settings)
    rt.migrate()
    rt.bootstrap()
    try:
        with (
            LiveServer(create_app(rt)) as server,
            httpx.Client(base_url=server.url, headers=AUTH) as client,
        ):
            exporter = GrpcSpanExporter(
                endpoint=f"127.0.0.1:{grpc_port}",
                insecure=True,
                headers=(("authorization", f"Bearer {ADMIN_KEY}"),),
            )
            provider = TracerProvider(resource=RESOURCE)
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace_id, _ = emit_rag_trace(provider)
            provider.shutdown()
            check_rag_trace(client, trace_id)

            import grpc
            from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                stub = trace_service_pb2_grpc.TraceServiceStub(channel)  # type: ignore[no-untyped-call]
                request = ExportTraceServiceRequest.FromString(request_of(raw_span()))
                with pytest.raises(grpc.RpcError) as refused:
                    stub.Export(request, metadata=(("authorization", "Bearer ph-wrong"),))
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
                bad = ExportTraceServiceRequest.FromString(
                    request_of(raw_span(trace_id=b"\x01" * 3))
                )
                with pytest.raises(grpc.RpcError) as invalid:
                    stub.Export(bad, metadata=(("authorization", f"Bearer {ADMIN_KEY}"),))
                assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                partial = stub.Export(
                    ExportTraceServiceRequest.FromString(
                        request_of(raw_span(), raw_span(start_time_unix_nano=0))
                    ),
                    metadata=(("authorization", f"Bearer {ADMIN_KEY}"),),
                )
                assert partial.partial_success.rejected_spans == 1
    finally:
        rt.db.close()
