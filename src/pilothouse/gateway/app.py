"""The ``/v1`` ASGI app: OpenAI-compatible routes, kept lean for speed.

A small ASGI app rather than a framework: the hot path is one dict lookup for the route, the
cached key check, one ``orjson.loads``, the router and one ``orjson.dumps``. Every error goes
out through :mod:`pilothouse.gateway.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from random import getrandbits
from typing import TYPE_CHECKING, Any

import orjson
from pluggy import HookCaller, HookImpl
from starlette.types import Receive, Scope, Send

from pilothouse.errors import (
    Forbidden,
    NotFound,
    PilothouseError,
    Unauthorized,
    UpstreamError,
)
from pilothouse.gateway import schema, spans
from pilothouse.gateway.cache import assemble_chunks, merge_tool_call
from pilothouse.gateway.call import Call
from pilothouse.gateway.errors import MethodNotAllowed, error_response, sse_error
from pilothouse.gateway.router import OpenedStream, Router
from pilothouse.hookspecs import SKIP_STREAMS

if TYPE_CHECKING:
    from pilothouse.gateway.accounting import Accounting
    from pilothouse.identity.keys import ApiKey
    from pilothouse.runtime import Runtime

log = logging.getLogger(__name__)

JSON = [(b"content-type", b"application/json")]
SSE = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
DONE = b"data: [DONE]\n\n"

Handler = Callable[[Scope, Receive, Send, "ApiKey", str], Awaitable[None]]


async def read_body(receive: Receive) -> bytes:
    """The whole request body (``PayloadTooLarge`` comes from ``receive`` itself)."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    while message.get("more_body"):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


def allowed(api_key: ApiKey, model: str) -> bool:
    """Whether the key's ``limits.models`` (names or glob patterns) lets it use ``model``."""
    patterns = api_key.limits.get("models")
    if not patterns:
        return True
    return any(p == model or fnmatch.fnmatchcase(model, p) for p in patterns)


def _call_hooks(results: list[Any]) -> list[Awaitable[Any]]:
    if not results:
        return results  # most calls: no plugin had anything to do
    return [r for r in results if inspect.isawaitable(r)]


async def _await_all(pending: list[Awaitable[Any]]) -> None:
    """Await hook results in order; when one raises, close the rest (never awaited otherwise)."""
    try:
        for awaitable in pending:
            await awaitable
    finally:
        for awaitable in pending:
            if inspect.iscoroutine(awaitable):
                awaitable.close()


class DirectHook:
    """Calls a hook's implementations as pluggy would, without pluggy's per-call machinery.

    For hooks on the gateway's request path (a pluggy call costs several microseconds per
    request there). It re-reads the implementations when the plugin set changed; a hook
    with wrappers goes through pluggy. Results come in pluggy's order, ``None`` left out.
    """

    def __init__(self, caller: HookCaller) -> None:
        self.caller = caller
        self._impls: list[HookImpl] = []
        self._calls: list[tuple[Callable[..., object], tuple[str, ...]]] | None = []

    def __call__(self, **kwargs: object) -> list[Any]:
        impls = self.caller.get_hookimpls()
        if impls != self._impls:  # identity of each implementation: a cheap comparison
            self._impls = impls
            wrapped = any(impl.hookwrapper or impl.wrapper for impl in impls)
            self._calls = None if wrapped else [(i.function, i.argnames) for i in reversed(impls)]
        calls = self._calls
        if calls is None:
            return [r for r in self.caller(**kwargs) if r is not None]
        out = []
        for function, argnames in calls:
            result = function(*map(kwargs.__getitem__, argnames))
            if result is not None:
                out.append(result)
        return out


class GatewayApp:
    """The ``/v1`` routes; mounted by the gateway plugin."""

    def __init__(self, runtime: Runtime, router: Router, extras: Accounting | None = None) -> None:
        self.runtime = runtime
        self.router = router
        self.extras = extras
        settings = runtime.settings
        self.capture = settings.gateway_capture_content
        self.max_chars = settings.gateway_content_max_chars
        self.hooks = runtime.plugins.hook
        self.on_request = DirectHook(self.hooks.gateway_request)
        self.on_response = DirectHook(self.hooks.gateway_response)
        self._review: tuple[list[HookImpl] | None, HookCaller | None] = (None, None)
        # Model routes are model_call with its operation bound: no coroutine of their own.
        self.chat = self._model_route("chat", schema.check_chat)
        self.routes: dict[str, tuple[str, Handler]] = {
            "/v1/chat/completions": ("POST", self.chat),
            "/v1/embeddings": ("POST", self._model_route("embeddings", schema.check_embeddings)),
            "/v1/completions": ("POST", self._model_route("completions", schema.check_completions)),
            "/v1/models": ("GET", self.models),
        }

    def _model_route(self, operation: str, check: Callable[[dict[str, Any]], str]) -> Handler:
        return functools.partial(self.model_call, operation=operation, check=check)

    # --- ASGI entry ---------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        request_id = f"req_{getrandbits(96):024x}"
        try:
            found = self.routes.get(path)
            if found is None and path.startswith("/v1/models/"):
                found = ("GET", self.model)
            if found is None:
                raise NotFound(f"unknown URL {path}", code="unknown_url")
            method, handler = found
            if scope["method"] != method:
                raise MethodNotAllowed(f"{path} accepts {method} only", code="method_not_allowed")
            api_key = self.authenticate(scope)
            await handler(scope, receive, send, api_key, request_id)
        except PilothouseError as exc:
            await self.send_error(send, exc, request_id)
        except Exception:
            log.exception("gateway request %s failed", request_id)
            await self.send_error(
                send,
                PilothouseError("an unexpected error occurred; it has been logged"),
                request_id,
            )

    def authenticate(self, scope: Scope) -> ApiKey:
        header = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        if not header:
            raise Unauthorized(
                "missing API key: send the header 'Authorization: Bearer <key>'",
                code="invalid_api_key",
            )
        scheme, _, token = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(
                "malformed Authorization header: expected 'Bearer <key>'", code="invalid_api_key"
            )
        return self.runtime.keys.verify(token.strip(), "gateway")

    async def send_error(self, send: Send, exc: PilothouseError, request_id: str) -> None:
        status, body, extra = error_response(exc)
        headers = [
            *JSON,
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
        ]
        headers.extend((k.lower().encode(), v.encode()) for k, v in extra.items())
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    # --- routes -------------------------------------------------------------------------

    def _listing(self, api_key: ApiKey) -> list[dict[str, Any]]:
        config = self.router.source.get()
        return [
            {"id": name, "object": "model", "created": 0, "owned_by": "pilothouse"}
            for name in config.models
            if allowed(api_key, name)
        ]

    async def models(
        self, scope: Scope, receive: Receive, send: Send, api_key: ApiKey, request_id: str
    ) -> None:
        doc = {"object": "list", "data": self._listing(api_key)}
        await self.send_json(send, doc, [(b"x-request-id", request_id.encode())])

    async def model(
        self, scope: Scope, receive: Receive, send: Send, api_key: ApiKey, request_id: str
    ) -> None:
        name = scope["path"][len("/v1/models/") :]
        for item in self._listing(api_key):
            if item["id"] == name:
                await self.send_json(send, item, [(b"x-request-id", request_id.encode())])
                return
        raise NotFound(f"the model {name!r} does not exist", code="model_not_found", param="model")

    # --- one model call -----------------------------------------------------------------

    def make_call(
        self, scope: Scope, api_key: ApiKey, operation: str, body: dict[str, Any], request_id: str
    ) -> Call:
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name != b"authorization":
                headers[name.decode("latin-1")] = value.decode("latin-1")
        call = Call(
            runtime=self.runtime,
            api_key=api_key,
            operation=operation,
            body=body,
            request_id=request_id,
            headers=headers,
            stream=operation != "embeddings" and body.get("stream") is True,
        )
        metadata = body.pop("metadata", None) if operation != "embeddings" else None
        if isinstance(metadata, dict):
            tags = metadata.pop("tags", None)
            if isinstance(tags, list):
                call.tags.extend(str(t) for t in tags)
            call.session_id = _str(metadata.pop("session_id", None))
            call.user = _str(metadata.pop("user_id", None))
            call.metadata.update(metadata)
        elif metadata is not None:
            raise schema.invalid("metadata", "expected an object")
        user = body.get("user")
        call.user = (
            headers.get("x-pilothouse-user")
            or (user if isinstance(user, str) else None)
            or call.user
        )
        call.session_id = headers.get("x-pilothouse-session") or call.session_id
        tag_header = headers.get("x-pilothouse-tags")
        if tag_header:
            call.tags.extend(t.strip() for t in tag_header.split(",") if t.strip())
        return call

    async def model_call(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        api_key: ApiKey,
        request_id: str,
        operation: str,
        check: Callable[[dict[str, Any]], str],
    ) -> None:
        raw = await read_body(receive)
        body = schema.parse_body(raw)
        call = self.make_call(scope, api_key, operation, body, request_id)
        admission = None
        try:
            pending = _call_hooks(self.on_request(call=call))
            if pending:
                await _await_all(pending)
            call.model = check(call.body)
            call.stream = operation != "embeddings" and call.body.get("stream") is True
            if not allowed(api_key, call.model):
                raise Forbidden(
                    f"this API key may not use the model {call.model!r}",
                    code="model_not_allowed",
                    param="model",
                )
            route = self.router.route(call.model)  # 404 before limits are charged
            if self.extras is not None:
                admission = await self.extras.admit(call, len(raw))
                cached = await self.extras.cached(call)
                if cached is not None:
                    await self.answer(call, send, cached)
                    return
            if call.stream:
                await self.stream(call, receive, send)
                return
            result = await self.router.call(call, operation, route)
            self.observe(call, result)
            pending = _call_hooks(self.on_response(call=call, response=result))
            if pending:
                await _await_all(pending)
            if self.extras is not None:
                await self.extras.store(call, result)
            await self.answer(call, send, result)
        except PilothouseError as exc:
            call.status = "error"
            call.error = exc
            raise
        except BaseException as exc:
            call.status = "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"
            if call.error is None and call.status == "error":
                call.error = UpstreamError(f"internal error: {type(exc).__name__}")
            raise
        finally:
            call.ended = time.perf_counter()
            if admission is not None and self.extras is not None:
                await self.extras.settle(call, admission)
            elif self.extras is not None:
                self.extras.observe_failure(call)
            spans.submit(call, capture=self.capture, max_chars=self.max_chars)

    def observe(self, call: Call, result: dict[str, Any]) -> None:
        """Record what the trace needs from a complete answer."""
        usage = result.get("usage")
        if isinstance(usage, dict):
            call.usage = usage
        model = result.get("model")
        if isinstance(model, str):
            call.served_model = model
        if not self.capture:
            return
        if call.operation == "chat":
            choices = result.get("choices") or []
            messages = [c.get("message") for c in choices if isinstance(c, dict)]
            call.output = messages[0] if len(messages) == 1 else messages
        elif call.operation == "completions":
            call.output = [c.get("text") for c in result.get("choices") or []]
        else:
            call.output = f"{len(result.get('data') or [])} embedding(s)"

    def _headers(self, call: Call) -> list[tuple[bytes, bytes]]:
        out = [
            (b"x-request-id", call.request_id.encode()),
            (b"x-pilothouse-overhead-ms", f"{call.overhead_ms():.3f}".encode()),
        ]
        if call.deployment is not None:
            out.append((b"x-pilothouse-deployment", call.deployment.id.encode()))
        for name, value in call.response_headers.items():
            out.append((name.encode(), value.encode()))  # names are case-insensitive in HTTP
        return out

    async def answer(self, call: Call, send: Send, result: dict[str, Any]) -> None:
        if call.stream:
            await self.replay(call, send, result)
            return
        await self.send_json(send, result, self._headers(call))

    async def send_json(
        self, send: Send, doc: dict[str, Any], headers: list[tuple[bytes, bytes]]
    ) -> None:
        body = orjson.dumps(doc)
        headers = [*JSON, (b"content-length", str(len(body)).encode()), *headers]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def replay(self, call: Call, send: Send, chunks: dict[str, Any]) -> None:
        """Send a cached stream (``{"chunks": [...]}``) as server-sent events."""
        await send(
            {"type": "http.response.start", "status": 200, "headers": SSE + self._headers(call)}
        )
        for chunk in chunks.get("chunks", []):
            await send(_event(chunk))
        await send({"type": "http.response.body", "body": DONE})

    # --- streams ------------------------------------------------------------------------

    async def stream(self, call: Call, receive: Receive, send: Send) -> None:
        """Open the upstream stream (retries allowed), then relay it; stop on disconnect."""
        body = call.body
        options = body.get("stream_options") or {}
        wants_usage = bool(options.get("include_usage"))
        if not wants_usage:
            # Ask upstreams for usage anyway (for limits, cost and the trace); drop it later.
            body["stream_options"] = {**options, "include_usage": True}
        try:
            opened = await self.router.open_stream(call, call.operation)
        finally:
            if not wants_usage:
                if options:
                    body["stream_options"] = options
                else:
                    body.pop("stream_options", None)
        relay = Relay(call, wants_usage, self.capture)
        review = self.stream_review()
        relay.keep = review is not None or bool(call.metadata.get("cache_key"))
        if self.hooks.gateway_stream.get_hookimpls():
            relay.filters = [f for f in self.hooks.gateway_stream(call=call) if f is not None]
        await send(
            {"type": "http.response.start", "status": 200, "headers": SSE + self._headers(call)}
        )
        pump = asyncio.ensure_future(relay.run(opened, send))
        watch = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not pump.done():
                call.status = "cancelled"
                pump.cancel()
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            relay.finish()
        if call.status != "ok" or not relay.keep:
            return
        # Assembled once, for the hooks and then the cache, as a non-streamed answer is.
        response = assemble_chunks(relay.chunks, call.usage)
        if response is None:
            return
        if review is not None:
            try:
                await _await_all(_call_hooks(review(call=call, response=response)))
            except Exception:  # it has been sent: an error only keeps it out of the cache
                log.exception(
                    "gateway_response hook failed after the stream of %s", call.request_id
                )
                return
        if self.extras is not None:
            await self.extras.store(call, response)

    def stream_review(self) -> HookCaller | None:
        """The ``gateway_response`` hooks that want streamed answers (None: no hook does);
        worked out again only when the plugin set changed."""
        impls = self.hooks.gateway_response.get_hookimpls()
        if impls == self._review[0]:
            return self._review[1]
        skipped = [impl.plugin for impl in impls if getattr(impl.function, SKIP_STREAMS, False)]
        review: HookCaller | None = None
        if not skipped:
            review = self.hooks.gateway_response
        elif len(skipped) < len(impls):
            review = self.runtime.plugins.subset_hook_caller("gateway_response", skipped)
        self._review = (impls, review)
        return review


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _event(chunk: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "http.response.body",
        "body": b"data: " + orjson.dumps(chunk) + b"\n\n",
        "more_body": True,
    }


async def _chunks_of(opened: OpenedStream) -> AsyncIterator[dict[str, Any]]:
    if opened.first is not None:
        yield opened.first
    async for chunk in opened.chunks:
        yield chunk


async def _disconnected(receive: Receive) -> None:
    """Return when the client went away."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class Relay:
    """Sends chunks to the client while recording what the trace needs."""

    def __init__(self, call: Call, wants_usage: bool, capture: bool) -> None:
        self.call = call
        self.wants_usage = wants_usage
        self.capture = capture
        self.text: dict[int, list[str]] = {}
        self.tool_calls: dict[int, dict[int, dict[str, Any]]] = {}
        self.finish_reasons: dict[int, str] = {}
        #: every chunk sent, kept only when hooks or the cache want the answer they amount to
        self.chunks: list[dict[str, Any]] = []
        self.keep = False
        #: chunk filters from the ``gateway_stream`` hook (e.g. guardrails), applied in order
        self.filters: list[
            Callable[[AsyncIterator[dict[str, Any]]], AsyncIterator[dict[str, Any]]]
        ] = []

    async def run(self, opened: OpenedStream, send: Send) -> None:
        call = self.call
        try:
            source = _chunks_of(opened)
            for wrap in self.filters:
                source = wrap(source)
            async for chunk in source:
                await self.relay(chunk, send)
        except PilothouseError as exc:
            await self.fail(exc, send)
            return
        except Exception as exc:
            from pilothouse.gateway.providers.base import AttemptFailed

            if isinstance(exc, AttemptFailed):
                await self.fail(exc.error, send)
                return
            log.exception("stream of %s failed", call.request_id)
            await self.fail(UpstreamError("the upstream stream failed"), send)
            return
        finally:
            await opened.aclose()
        await send({"type": "http.response.body", "body": DONE})

    async def fail(self, exc: PilothouseError, send: Send) -> None:
        self.call.status = "error"
        self.call.error = exc
        await send({"type": "http.response.body", "body": sse_error(exc), "more_body": True})
        await send({"type": "http.response.body", "body": DONE})

    async def relay(self, chunk: dict[str, Any], send: Send) -> None:
        call = self.call
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            call.usage = usage
        choices = chunk.get("choices")
        if choices:
            if call.first_token_s is None:
                call.first_token_s = time.perf_counter() - call.started
            call.output_chunks += 1
            if self.capture:
                self.collect(choices)
            if call.served_model is None and isinstance(chunk.get("model"), str):
                call.served_model = chunk["model"]
        elif usage is not None and not self.wants_usage:
            return  # the usage-only chunk the client did not ask for
        if not self.wants_usage and usage is not None:
            chunk = {k: v for k, v in chunk.items() if k != "usage"}
        if self.keep:
            self.chunks.append(chunk)
        await send(_event(chunk))

    def collect(self, choices: list[Any]) -> None:
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            delta = choice.get("delta") or {}
            text = delta.get("content") if isinstance(delta, dict) else None
            if text is None:
                text = choice.get("text")  # legacy completions
            if isinstance(text, str) and text:
                self.text.setdefault(index, []).append(text)
            for tc in (delta.get("tool_calls") or []) if isinstance(delta, dict) else []:
                merge_tool_call(self.tool_calls.setdefault(index, {}), tc)
            if choice.get("finish_reason"):
                self.finish_reasons[index] = choice["finish_reason"]

    def finish(self) -> None:
        """Assemble the streamed output for the trace."""
        if not self.capture:
            return
        indexes = sorted(set(self.text) | set(self.tool_calls))
        messages = []
        for index in indexes:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": "".join(self.text.get(index, [])),
            }
            calls = self.tool_calls.get(index)
            if calls:
                message["tool_calls"] = [calls[k] for k in sorted(calls)]
            messages.append(message)
        self.call.output = messages[0] if len(messages) == 1 else messages


__all__ = ["GatewayApp", "Relay", "allowed"]
