"""Tracing for applications, on the OpenTelemetry SDK (so spans can go to any OTLP backend too).

    from pilothouse import sdk

    sdk.configure(base_url="http://127.0.0.1:4141", api_key="ph-...")  # or PILOTHOUSE_* env

    @sdk.observe()
    def answer(question: str) -> str:
        sdk.set_trace(session_id="conv-1", user_id="u-7", tags=["beta"])
        with sdk.span("retrieve", kind="retrieval", input=question) as s:
            s.set_output(["doc 1", "doc 2"])
        return "..."

    sdk.instrument_openai()          # every openai chat/embeddings call becomes an LLM span
    sdk.score("helpful", 1.0)        # on the current trace
    sdk.flush()                      # also done at exit

Attributes follow OpenInference (``openinference.span.kind``, ``input.value``...) and the
OpenTelemetry GenAI conventions (``gen_ai.*``), which Pilothouse maps on ingest.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import orjson
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span as OtelSpan
from opentelemetry.trace import SpanKind, Status, StatusCode

F = TypeVar("F", bound=Callable[..., Any])

KINDS = {
    "chain": "CHAIN",
    "llm": "LLM",
    "tool": "TOOL",
    "agent": "AGENT",
    "retrieval": "RETRIEVER",
    "embedding": "EMBEDDING",
    "rerank": "RERANKER",
    "guardrail": "GUARDRAIL",
    "evaluator": "EVALUATOR",
}
#: Longest captured input or output text, in characters.
MAX_CHARS = 20_000

_lock = threading.Lock()
_state: dict[str, Any] = {}


def _json(value: Any) -> str:
    if isinstance(value, str):
        return value[:MAX_CHARS]
    text = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    return text[:MAX_CHARS]


def configure(
    base_url: str | None = None,
    api_key: str | None = None,
    *,
    service_name: str | None = None,
    environment: str | None = None,
    release: str | None = None,
    exporter: SpanExporter | None = None,
) -> TracerProvider:
    """Send this process's spans to Pilothouse (``PILOTHOUSE_BASE_URL``/``PILOTHOUSE_API_KEY``).

    ``exporter`` replaces the OTLP/HTTP exporter (e.g. to send elsewhere, or in tests).
    """
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    base = (base_url or os.environ.get("PILOTHOUSE_BASE_URL") or "http://127.0.0.1:4141").rstrip(
        "/"
    )
    key = api_key or os.environ.get("PILOTHOUSE_API_KEY", "")
    attributes: dict[str, Any] = {
        "service.name": service_name or os.environ.get("OTEL_SERVICE_NAME", "pilothouse-app")
    }
    if environment:
        attributes["deployment.environment.name"] = environment
    if release:
        attributes["service.version"] = release
    provider = TracerProvider(resource=Resource.create(attributes))
    if exporter is None:
        exporter = OTLPSpanExporter(
            endpoint=f"{base}/v1/traces", headers={"Authorization": f"Bearer {key}"}
        )
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    with _lock:
        previous = _state.get("provider")
        _state.update(provider=provider, base_url=base, api_key=key)
        if not _state.get("atexit"):
            atexit.register(flush)
            _state["atexit"] = True
    if previous is not None:
        previous.shutdown()
    return provider


def _provider() -> TracerProvider:
    provider = _state.get("provider")
    if provider is None:
        provider = configure()
    assert isinstance(provider, TracerProvider)
    return provider


def _tracer() -> otel_trace.Tracer:
    return _provider().get_tracer("pilothouse.sdk")


def flush(timeout_millis: int = 30_000) -> bool:
    """Export every finished span now."""
    provider = _state.get("provider")
    return bool(provider.force_flush(timeout_millis)) if provider is not None else True


def _trace_attributes(
    session_id: str | None = None,
    user_id: str | None = None,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    prompt_name: str | None = None,
    prompt_version: int | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if session_id is not None:
        out["session.id"] = session_id
    if user_id is not None:
        out["user.id"] = user_id
    if tags:
        out["tag.tags"] = list(tags)
    if metadata:
        out["metadata"] = _json(metadata)
    if prompt_name is not None:
        out["pilothouse.prompt.name"] = prompt_name
    if prompt_version is not None:
        out["pilothouse.prompt.version"] = prompt_version
    return out


class ObservedSpan:
    """A span being recorded: a sync or async context manager."""

    def __init__(self, name: str, kind: str, attributes: dict[str, Any]) -> None:
        self.name = name
        self.attributes = attributes
        self.attributes["openinference.span.kind"] = KINDS.get(kind, kind.upper())
        self._span: OtelSpan | None = None
        self._scope: Any = None

    @property
    def trace_id(self) -> str:
        assert self._span is not None, "the span has not started"
        return format(self._span.get_span_context().trace_id, "032x")

    @property
    def span_id(self) -> str:
        assert self._span is not None, "the span has not started"
        return format(self._span.get_span_context().span_id, "016x")

    def set_input(self, value: Any) -> None:
        self.set_attribute("input.value", _json(value))

    def set_output(self, value: Any) -> None:
        self.set_attribute("output.value", _json(value))

    def set_attribute(self, key: str, value: Any) -> None:
        if self._span is not None:
            self._span.set_attribute(key, value)
        else:
            self.attributes[key] = value

    def update(self, **trace: Any) -> None:
        """Set session_id, user_id, tags, metadata, prompt_name or prompt_version."""
        for key, value in _trace_attributes(**trace).items():
            self.set_attribute(key, value)

    def __enter__(self) -> ObservedSpan:
        self._scope = _tracer().start_as_current_span(
            self.name,
            attributes=self.attributes,
            record_exception=True,
            set_status_on_exception=True,
        )
        self._span = self._scope.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._scope.__exit__(*exc)

    async def __aenter__(self) -> ObservedSpan:
        return self.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        self.__exit__(*exc)


def trace(
    name: str,
    *,
    input: Any = None,
    session_id: str | None = None,
    user_id: str | None = None,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    prompt_name: str | None = None,
    prompt_version: int | None = None,
) -> ObservedSpan:
    """Start a trace (a root span, or a chain span inside the current trace)."""
    attributes = _trace_attributes(session_id, user_id, tags, metadata, prompt_name, prompt_version)
    if input is not None:
        attributes["input.value"] = _json(input)
    return ObservedSpan(name, "chain", attributes)


def span(name: str, *, kind: str = "chain", input: Any = None, **attributes: Any) -> ObservedSpan:
    """A span inside the current trace; ``kind``: chain, llm, tool, agent, retrieval..."""
    attrs = dict(attributes)
    if input is not None:
        attrs["input.value"] = _json(input)
    return ObservedSpan(name, kind, attrs)


def set_trace(**trace: Any) -> None:
    """Set session_id, user_id, tags, metadata, prompt_name/prompt_version on the current span."""
    current = otel_trace.get_current_span()
    for key, value in _trace_attributes(**trace).items():
        current.set_attribute(key, value)


def current_trace_id() -> str | None:
    context = otel_trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def _inputs(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        bound = inspect.signature(func).bind(*args, **kwargs)
    except TypeError:
        return {"args": args, "kwargs": kwargs}
    values = dict(bound.arguments)
    values.pop("self", None)
    values.pop("cls", None)
    return values


def observe(
    name: str | None = None,
    *,
    kind: str = "chain",
    capture_input: bool = True,
    capture_output: bool = True,
) -> Callable[[F], F]:
    """Record each call of the decorated function (sync, async, generator) as a span."""

    def decorate(func: F) -> F:
        label = name or func.__qualname__

        def start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> ObservedSpan:
            observed = span(label, kind=kind)
            if capture_input:
                observed.attributes["input.value"] = _json(_inputs(func, args, kwargs))
            return observed

        def finish(observed: ObservedSpan, value: Any) -> None:
            if capture_output and value is not None:
                observed.set_output(value)

        if inspect.isasyncgenfunction(func):

            @functools.wraps(func)
            async def agen(*args: Any, **kwargs: Any) -> Any:
                with start(args, kwargs) as observed:
                    items = []
                    async for item in func(*args, **kwargs):
                        items.append(item)
                        yield item
                    finish(observed, _joined(items))

            return agen  # type: ignore[return-value]
        if inspect.isgeneratorfunction(func):

            @functools.wraps(func)
            def gen(*args: Any, **kwargs: Any) -> Iterator[Any]:
                with start(args, kwargs) as observed:
                    items = []
                    for item in func(*args, **kwargs):
                        items.append(item)
                        yield item
                    finish(observed, _joined(items))

            return gen  # type: ignore[return-value]
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def acall(*args: Any, **kwargs: Any) -> Any:
                with start(args, kwargs) as observed:
                    value = await func(*args, **kwargs)
                    finish(observed, value)
                    return value

            return acall  # type: ignore[return-value]

        @functools.wraps(func)
        def call(*args: Any, **kwargs: Any) -> Any:
            with start(args, kwargs) as observed:
                value = func(*args, **kwargs)
                finish(observed, value)
                return value

        return call  # type: ignore[return-value]

    return decorate


def _joined(items: list[Any]) -> Any:
    return "".join(items) if items and all(isinstance(i, str) for i in items) else items


def score(
    name: str,
    value: float | bool | str,
    *,
    trace_id: str | None = None,
    span_id: str | None = None,
    comment: str | None = None,
) -> dict[str, Any]:
    """Attach a score to a trace (the current one by default) through ``POST /api/scores``."""
    trace_id = trace_id or current_trace_id()
    if trace_id is None:
        raise ValueError("no current trace: pass trace_id")
    _provider()
    body: dict[str, Any] = {"trace_id": trace_id, "name": name, "value": value, "source": "sdk"}
    if span_id:
        body["span_id"] = span_id
    if comment:
        body["comment"] = comment
    response = httpx.post(
        f"{_state['base_url']}/api/scores",
        json=body,
        headers={"Authorization": f"Bearer {_state['api_key']}"},
        timeout=10,
    )
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


# --- openai -----------------------------------------------------------------------------------


def _messages_attr(messages: Any) -> str:
    return _json(list(messages) if messages is not None else [])


def _record_usage(otel: OtelSpan, usage: Any) -> None:
    if usage is None:
        return
    tokens_in = getattr(usage, "prompt_tokens", None)
    tokens_out = getattr(usage, "completion_tokens", None)
    if tokens_in is not None:
        otel.set_attribute("gen_ai.usage.input_tokens", tokens_in)
    if tokens_out is not None:
        otel.set_attribute("gen_ai.usage.output_tokens", tokens_out)


def _record_completion(otel: OtelSpan, response: Any) -> None:
    otel.set_attribute("gen_ai.response.model", getattr(response, "model", "") or "")
    choices = getattr(response, "choices", None) or []
    out = [
        {"role": "assistant", "content": c.message.content, "finish_reason": c.finish_reason}
        for c in choices
        if getattr(c, "message", None) is not None
    ]
    otel.set_attribute("gen_ai.output.messages", _json(out))
    _record_usage(otel, getattr(response, "usage", None))


class _StreamRecorder:
    """Wraps an openai stream: passes chunks through, records TTFT, text and usage."""

    def __init__(self, stream: Any, otel: OtelSpan, started: float) -> None:
        self._stream = stream
        self._otel = otel
        self._started = started
        self._text: list[str] = []
        self._first = False
        self._done = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _see(self, chunk: Any) -> None:
        if not self._first:
            self._first = True
            self._otel.set_attribute(
                "pilothouse.ttft_ms", (time.perf_counter() - self._started) * 1000
            )
        if getattr(chunk, "model", None):
            self._otel.set_attribute("gen_ai.response.model", chunk.model)
        for choice in getattr(chunk, "choices", None) or []:
            delta = getattr(choice, "delta", None)
            if delta is not None and getattr(delta, "content", None):
                self._text.append(delta.content)
        _record_usage(self._otel, getattr(chunk, "usage", None))

    def _end(self, exc: BaseException | None = None) -> None:
        if self._done:
            return
        self._done = True
        self._otel.set_attribute(
            "gen_ai.output.messages",
            _json([{"role": "assistant", "content": "".join(self._text)}]),
        )
        if exc is not None:
            self._otel.record_exception(exc)
            self._otel.set_status(Status(StatusCode.ERROR, str(exc)))
        self._otel.end()

    def __iter__(self) -> Iterator[Any]:
        try:
            for chunk in self._stream:
                self._see(chunk)
                yield chunk
        except BaseException as exc:
            self._end(exc)
            raise
        self._end()

    async def __aiter__(self) -> Any:
        try:
            async for chunk in self._stream:
                self._see(chunk)
                yield chunk
        except BaseException as exc:
            self._end(exc)
            raise
        self._end()

    def __enter__(self) -> _StreamRecorder:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._end()
        self._stream.close()

    async def __aenter__(self) -> _StreamRecorder:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._end()
        await self._stream.close()


def _start_llm_span(operation: str, kwargs: dict[str, Any]) -> OtelSpan:
    # A leaf span: not made current, so a stream may end in another task or thread.
    model = str(kwargs.get("model", ""))
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "openinference.span.kind": "LLM" if operation == "chat" else "EMBEDDING",
    }
    if operation == "chat":
        attributes["gen_ai.input.messages"] = _messages_attr(kwargs.get("messages"))
    else:
        attributes["input.value"] = _json(kwargs.get("input"))
    return _tracer().start_span(f"{operation} {model}", kind=SpanKind.CLIENT, attributes=attributes)


def _wrap_create(
    original: Callable[..., Any], operation: str, is_async: bool
) -> Callable[..., Any]:
    if getattr(original, "__pilothouse__", False):
        return original

    def finish(otel: OtelSpan, response: Any, started: float) -> Any:
        streaming = hasattr(response, "__iter__") or hasattr(response, "__aiter__")
        if operation == "chat" and streaming and not hasattr(response, "choices"):
            return _StreamRecorder(response, otel, started)
        if operation == "chat":
            _record_completion(otel, response)
        else:
            otel.set_attribute("gen_ai.response.model", getattr(response, "model", "") or "")
            _record_usage(otel, getattr(response, "usage", None))
        otel.end()
        return response

    def fail(otel: OtelSpan, exc: BaseException) -> None:
        otel.record_exception(exc)
        otel.set_status(Status(StatusCode.ERROR, str(exc)))
        otel.end()

    if is_async:

        @functools.wraps(original)
        async def acreate(self: Any, *args: Any, **kwargs: Any) -> Any:
            otel = _start_llm_span(operation, kwargs)
            started = time.perf_counter()
            try:
                response = await original(self, *args, **kwargs)
            except BaseException as exc:
                fail(otel, exc)
                raise
            return finish(otel, response, started)

        acreate.__pilothouse__ = True  # type: ignore[attr-defined]
        return acreate

    @functools.wraps(original)
    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        otel = _start_llm_span(operation, kwargs)
        started = time.perf_counter()
        try:
            response = original(self, *args, **kwargs)
        except BaseException as exc:
            fail(otel, exc)
            raise
        return finish(otel, response, started)

    create.__pilothouse__ = True  # type: ignore[attr-defined]
    return create


def instrument_openai() -> None:
    """Record every ``openai`` chat completion (streaming too) and embedding call as a span."""
    from openai.resources import embeddings
    from openai.resources.chat import completions

    targets: list[tuple[Any, str, bool]] = [
        (completions.Completions, "chat", False),
        (completions.AsyncCompletions, "chat", True),
        (embeddings.Embeddings, "embeddings", False),
        (embeddings.AsyncEmbeddings, "embeddings", True),
    ]
    originals = _state.setdefault("openai_originals", {})
    for cls, operation, is_async in targets:
        if cls not in originals:
            originals[cls] = cls.create
            cls.create = _wrap_create(cls.create, operation, is_async)


def uninstrument_openai() -> None:
    """Undo :func:`instrument_openai`."""
    for cls, original in _state.pop("openai_originals", {}).items():
        cls.create = original


__all__ = [
    "ObservedSpan",
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
]
