"""OTLP trace payloads (protobuf and the OTLP JSON mapping) -> :class:`Span` lists.

A payload is decoded whole before anything is stored: a malformed body or a bad trace/span id
fails the request (400) with nothing written. Spans that are well-formed but unusable (no start
time, ending before they start) are left out and reported in ``partial_success``.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from pilothouse.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from pilothouse.tracing.model import Span

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MEDIA_TYPES = {
    "application/x-protobuf": PROTOBUF,
    "application/protobuf": PROTOBUF,
    "application/json": JSON,
}
KINDS = ("internal", "internal", "server", "client", "producer", "consumer")
STATUSES = ("unset", "ok", "error")
_JSON_KINDS = {f"SPAN_KIND_{k.upper()}": i for i, k in enumerate(KINDS)} | {
    "SPAN_KIND_UNSPECIFIED": 0
}
_JSON_STATUSES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_HEX = frozenset("0123456789abcdef")
_KIND_NAMES = dict(enumerate(KINDS))
_STATUS_NAMES = dict(enumerate(STATUSES))


@dataclass
class Decoded:
    """The spans of one request and those left out, with why."""

    spans: list[Span] = field(default_factory=list)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if reason not in self.reasons and len(self.reasons) < 5:
            self.reasons.append(reason)

    @property
    def error_message(self) -> str:
        return "; ".join(self.reasons)


def media_type(content_type: str | None) -> str:
    """The OTLP encoding named by a Content-Type header, or 415."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    found = MEDIA_TYPES.get(base)
    if found is None:
        raise UnsupportedMediaType(
            f"Content-Type {base or '(none)'!r} is not supported: send application/x-protobuf "
            "or application/json",
            code="unsupported_content_type",
        )
    return found


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding`` (identity or gzip), refusing more than ``limit`` bytes."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported: use gzip or none",
            code="unsupported_content_encoding",
        )
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"body is not valid gzip: {exc}", code="malformed_body") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed body exceeds {limit} bytes", code="payload_too_large")
    if not inflater.eof:
        raise BadRequest("gzip body is truncated", code="malformed_body")
    return out


# --- ids --------------------------------------------------------------------------------------


def _bad_id(what: str, where: str, value: Any) -> BadRequest:
    return BadRequest(f"{where}: invalid {what} {value!r}", code="invalid_id", param=where)


def _bytes_id(raw: bytes, size: int, what: str, where: str, optional: bool = False) -> str | None:
    if not raw and optional:
        return None
    if len(raw) != size or not any(raw):
        raise _bad_id(what, where, raw.hex())
    return raw.hex()


def _text_id(raw: Any, size: int, what: str, where: str, optional: bool = False) -> str | None:
    if (raw is None or raw == "") and optional:
        return None
    if not isinstance(raw, str):
        raise _bad_id(what, where, raw)
    text = raw.lower()
    if len(text) == size * 2 and _HEX.issuperset(text):
        if text.strip("0") == "":
            raise _bad_id(what, where, raw)
        return text
    # Not hex: protobuf's own JSON printer writes ids in base64; accept that too.
    try:
        decoded = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise _bad_id(what, where, raw) from None
    return _bytes_id(decoded, size, what, where)


# --- protobuf ---------------------------------------------------------------------------------


def _any(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_any(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def _attrs(items: Any) -> dict[str, Any]:
    # The hot loop of ingestion: scalar kinds inline, the rest through _any.
    out: dict[str, Any] = {}
    for kv in items:
        value = kv.value
        kind = value.WhichOneof("value")
        if kind == "string_value":
            out[kv.key] = value.string_value
        elif kind == "int_value":
            out[kv.key] = value.int_value
        elif kind == "double_value":
            out[kv.key] = value.double_value
        elif kind == "bool_value":
            out[kv.key] = value.bool_value
        else:
            out[kv.key] = _any(value)
    return out


_ZERO16 = bytes(16)
_ZERO8 = bytes(8)


def _events(events: Any) -> list[dict[str, Any]]:
    return [
        {"name": e.name, "time_ns": e.time_unix_nano, "attributes": _attrs(e.attributes)}
        for e in events
    ]


def _links(links: Any) -> list[dict[str, Any]]:
    return [
        {
            "trace_id": link.trace_id.hex(),
            "span_id": link.span_id.hex(),
            "attributes": _attrs(link.attributes),
        }
        for link in links
    ]


def _check_times(start: int, end: int, out: Decoded) -> bool:
    if start <= 0:
        out.reject("span without start_time_unix_nano")
        return False
    if end < start:
        out.reject("span ends before it starts")
        return False
    return True


def decode_protobuf(body: bytes, project_id: int) -> Decoded:
    """Spans of a binary ``ExportTraceServiceRequest``."""
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except DecodeError as exc:
        raise BadRequest(
            f"body is not an OTLP ExportTraceServiceRequest: {exc}", code="malformed_body"
        ) from None
    return decode_message(request, project_id)


def decode_message(request: ExportTraceServiceRequest, project_id: int) -> Decoded:
    """Spans of a parsed ``ExportTraceServiceRequest`` (from HTTP or gRPC)."""
    out = Decoded()
    append = out.spans.append
    for r, resource_spans in enumerate(request.resource_spans):
        resource = _attrs(resource_spans.resource.attributes)
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            scope_pb = scope_spans.scope
            scope: dict[str, Any] = {"name": scope_pb.name, "version": scope_pb.version}
            if scope_pb.attributes:
                scope["attributes"] = _attrs(scope_pb.attributes)
            for i, pb in enumerate(scope_spans.spans):
                trace_id, span_id, parent = pb.trace_id, pb.span_id, pb.parent_span_id
                if (
                    len(trace_id) != 16
                    or trace_id == _ZERO16
                    or len(span_id) != 8
                    or span_id == _ZERO8
                    or (parent and (len(parent) != 8 or parent == _ZERO8))
                ):
                    where = f"resource_spans[{r}].scope_spans[{s}].spans[{i}]"
                    _bytes_id(trace_id, 16, "trace_id", where)
                    _bytes_id(span_id, 8, "span_id", where)
                    _bytes_id(parent, 8, "parent_span_id", where, optional=True)
                start, end = pb.start_time_unix_nano, pb.end_time_unix_nano
                if not _check_times(start, end, out):
                    continue
                status, events, links = pb.status, pb.events, pb.links
                append(
                    Span(
                        project_id,
                        trace_id.hex(),
                        span_id.hex(),
                        pb.name,
                        start,
                        end,
                        parent.hex() if parent else None,
                        _KIND_NAMES.get(pb.kind, "internal"),
                        _STATUS_NAMES.get(status.code, "unset"),
                        status.message or None,
                        _attrs(pb.attributes),
                        _events(events) if events else [],
                        _links(links) if links else [],
                        resource,
                        scope,
                    )
                )
    return out


def encode_response(rejected: int, message: str, media: str) -> bytes:
    """An ``ExportTraceServiceResponse`` in the request's encoding."""
    if media == JSON:
        if not rejected:
            return b"{}"
        return orjson.dumps(
            {"partialSuccess": {"rejectedSpans": str(rejected), "errorMessage": message}}
        )
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    return bytes(response.SerializeToString())


# --- JSON -------------------------------------------------------------------------------------


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


_KEYS: dict[str, tuple[str, str]] = {}


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """``obj[name]`` under its lowerCamelCase or snake_case spelling."""
    if not isinstance(obj, dict):
        return default
    if name in obj:
        return obj[name]
    pair = _KEYS.get(name)
    if pair is None:
        pair = _KEYS[name] = (name, _snake(name))
    return obj.get(pair[1], default)


def _list(obj: Any, name: str, where: str) -> list[Any]:
    value = _get(obj, name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{where}.{name} must be an array", code="malformed_body")
    return value


def _int(value: Any, where: str) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadRequest(f"{where}: {value!r} is not an integer", code="malformed_body")
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"{where}: {value!r} is not an integer", code="malformed_body") from None


def _json_any(value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        return value
    for name, convert in _JSON_VALUES:
        raw = _get(value, name)
        if raw is not None:
            return convert(raw, where)
    return None


def _json_array(raw: Any, where: str) -> list[Any]:
    return [_json_any(v, where) for v in _list(raw, "values", where)]


def _json_kvlist(raw: Any, where: str) -> dict[str, Any]:
    return _json_attrs(_list(raw, "values", where), where)


def _json_double(raw: Any, where: str) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise BadRequest(f"{where}: {raw!r} is not a number", code="malformed_body") from None


_JSON_VALUES: list[tuple[str, Callable[[Any, str], Any]]] = [
    ("stringValue", lambda raw, _w: str(raw)),
    ("intValue", _int),
    ("boolValue", lambda raw, _w: bool(raw)),
    ("doubleValue", _json_double),
    ("arrayValue", _json_array),
    ("kvlistValue", _json_kvlist),
    ("bytesValue", lambda raw, _w: str(raw)),
]


def _json_attrs(items: Any, where: str) -> dict[str, Any]:
    if not isinstance(items, list):
        raise BadRequest(f"{where}: attributes must be an array", code="malformed_body")
    out: dict[str, Any] = {}
    for item in items:
        key = _get(item, "key")
        if not isinstance(key, str):
            raise BadRequest(f"{where}: attribute without a key", code="malformed_body")
        out[key] = _json_any(_get(item, "value"), f"{where}.{key}")
    return out


def _enum(value: Any, names: dict[str, int], where: str) -> int:
    if isinstance(value, str) and not value.isdigit():
        if value not in names:
            raise BadRequest(f"{where}: unknown value {value!r}", code="malformed_body")
        return names[value]
    return _int(value, where)


def decode_json(body: bytes, project_id: int) -> Decoded:
    """Spans of an OTLP/JSON ``ExportTraceServiceRequest`` (hex ids, either key spelling)."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}", code="malformed_body") from None
    if not isinstance(request, dict):
        raise BadRequest("body must be a JSON object", code="malformed_body")
    out = Decoded()
    for r, resource_spans in enumerate(_list(request, "resourceSpans", "body")):
        rwhere = f"resourceSpans[{r}]"
        resource = _json_attrs(
            _list(_get(resource_spans, "resource", {}), "attributes", rwhere), rwhere
        )
        for s, scope_spans in enumerate(_list(resource_spans, "scopeSpans", rwhere)):
            swhere = f"{rwhere}.scopeSpans[{s}]"
            scope_raw = _get(scope_spans, "scope") or {}
            scope: dict[str, Any] = {
                "name": _get(scope_raw, "name", ""),
                "version": _get(scope_raw, "version", ""),
            }
            if _get(scope_raw, "attributes"):
                scope["attributes"] = _json_attrs(_get(scope_raw, "attributes"), swhere)
            for i, raw in enumerate(_list(scope_spans, "spans", swhere)):
                where = f"{swhere}.spans[{i}]"
                if not isinstance(raw, dict):
                    raise BadRequest(f"{where} must be an object", code="malformed_body")
                trace_id = _text_id(_get(raw, "traceId"), 16, "trace_id", where)
                span_id = _text_id(_get(raw, "spanId"), 8, "span_id", where)
                parent = _text_id(
                    _get(raw, "parentSpanId"), 8, "parent_span_id", where, optional=True
                )
                assert trace_id is not None and span_id is not None
                start = _int(_get(raw, "startTimeUnixNano"), where)
                end = _int(_get(raw, "endTimeUnixNano"), where)
                kind = _enum(_get(raw, "kind", 0), _JSON_KINDS, f"{where}.kind")
                status = _get(raw, "status") or {}
                code = _enum(_get(status, "code", 0), _JSON_STATUSES, f"{where}.status.code")
                events = [
                    {
                        "name": _get(e, "name", ""),
                        "time_ns": _int(_get(e, "timeUnixNano"), where),
                        "attributes": _json_attrs(_get(e, "attributes") or [], where),
                    }
                    for e in _list(raw, "events", where)
                ]
                links = [
                    {
                        "trace_id": _text_id(_get(link, "traceId"), 16, "link trace_id", where),
                        "span_id": _text_id(_get(link, "spanId"), 8, "link span_id", where),
                        "attributes": _json_attrs(_get(link, "attributes") or [], where),
                    }
                    for link in _list(raw, "links", where)
                ]
                attributes = _json_attrs(_get(raw, "attributes") or [], where)
                if not _check_times(start, end, out):
                    continue
                out.spans.append(
                    Span(
                        project_id=project_id,
                        trace_id=trace_id,
                        span_id=span_id,
                        parent_span_id=parent,
                        name=str(_get(raw, "name", "")),
                        start_time_ns=start,
                        end_time_ns=end,
                        kind=KINDS[kind] if 0 <= kind < len(KINDS) else "internal",
                        status_code=STATUSES[code] if 0 <= code < 3 else "unset",
                        status_message=_get(status, "message") or None,
                        attributes=attributes,
                        events=events,
                        links=links,
                        resource=resource,
                        scope=scope,
                    )
                )
    return out


def decode(body: bytes, media: str, project_id: int) -> Decoded:
    return decode_protobuf(body, project_id) if media == PROTOBUF else decode_json(body, project_id)


__all__ = [
    "JSON",
    "PROTOBUF",
    "Decoded",
    "decode",
    "decode_json",
    "decode_message",
    "decode_protobuf",
    "decompress",
    "encode_response",
    "media_type",
]
