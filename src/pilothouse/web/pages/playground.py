"""The prompt playground: fill a version's variables, render it, run it through the gateway.

The call goes to the gateway's own ``/v1/chat/completions`` handler in-process, as the
signed-in user of the project (an in-memory key with the id of internal calls,
:data:`pilothouse.store.gateway.NO_KEY`), so prompt rendering, guardrails, routing, limits,
budgets, cost and the trace span apply exactly as for any client. The prompt goes as a
reference (``"prompt": {"name", "version", "variables"}``), so the trace names the version.

Two ways to run: the form POSTs and the page comes back with the whole answer (no JavaScript
needed); ``static/playground.js`` instead POSTs the same form to ``.../playground/stream`` and
shows the answer as it arrives (server-sent events: ``delta``, then ``done`` or ``error``).
Running spends the project's budget, so it needs the ``gateway`` scope (members and up; a
viewer may look at the form and the rendered prompt but not run it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from random import getrandbits
from typing import TYPE_CHECKING, Any

import anyio.from_thread
import orjson
from starlette.responses import Response, StreamingResponse
from starlette.types import Message

from pilothouse.errors import BadRequest, PilothouseError
from pilothouse.identity.keys import ApiKey
from pilothouse.prompts import model
from pilothouse.prompts.api import registry_of
from pilothouse.store import prompts as store
from pilothouse.store.gateway import NO_KEY
from pilothouse.web.pages.prompts import prompt_url
from pilothouse.web.ui import Page

if TYPE_CHECKING:
    from pilothouse.prompts.registry import Resolved

DEFAULT_MODEL = "mock/echo"
MAX_VALUE = 100_000
PATH = "/v1/chat/completions"


@dataclass
class Outcome:
    """What one run produced, streamed or not."""

    text: list[str] = field(default_factory=list)
    model: str | None = None
    usage: dict[str, Any] | None = None
    error: str | None = None


# --- the in-process gateway call ----------------------------------------------------------


def _events(buffer: bytearray) -> list[dict[str, Any]]:
    """Complete ``data:`` events taken off the front of ``buffer``."""
    out: list[dict[str, Any]] = []
    while (end := buffer.find(b"\n\n")) >= 0:
        block = bytes(buffer[:end])
        del buffer[: end + 2]
        for line in block.split(b"\n"):
            if line.startswith(b"data: ") and line[6:] != b"[DONE]":
                out.append(orjson.loads(line[6:]))
    return out


def _read(doc: dict[str, Any], outcome: Outcome) -> str | None:
    """Fold one answer or stream chunk into ``outcome``; the new text, if any."""
    if isinstance(doc.get("error"), dict):
        outcome.error = str(doc["error"].get("message") or "the call failed")
        return None
    if isinstance(doc.get("model"), str):
        outcome.model = doc["model"]
    if isinstance(doc.get("usage"), dict):
        outcome.usage = doc["usage"]
    pieces = []
    for choice in doc.get("choices") or []:
        part = choice.get("delta") or choice.get("message") or {}
        content = part.get("content") if isinstance(part, dict) else None
        if isinstance(content, str) and content:
            pieces.append(content)
        for call in (part.get("tool_calls") or []) if isinstance(part, dict) else []:
            function = call.get("function") or {}
            pieces.append(
                f"[tool call {function.get('name', '')}({function.get('arguments', '')})]"
            )
    text = "".join(pieces)
    if text:
        outcome.text.append(text)
    return text or None


async def run_chat(
    page: Page, body: dict[str, Any], outcome: Outcome
) -> AsyncIterator[tuple[str, Any]]:
    """Call the gateway in-process; yields ("delta", text) as the answer arrives."""
    from pilothouse.gateway.plugin import gateway_of

    project = page.project
    user = page.user
    assert project is not None and user is not None
    key = ApiKey(
        id=NO_KEY,
        name=f"web:{user['email']}",
        project_id=int(project["id"]),
        org_id=int(project["org_id"]),
        scopes=frozenset({"gateway"}),
        limits={},
        expires_at=None,
    )
    app = gateway_of(page.runtime).app
    raw = orjson.dumps(body)
    scope = {
        "type": "http",
        "method": "POST",
        "path": PATH,
        "headers": [
            (b"content-type", b"application/json"),
            (b"x-pilothouse-user", str(user["email"]).encode()),
        ],
    }
    sent = asyncio.Event()
    messages: asyncio.Queue[Message | None] = asyncio.Queue()

    async def receive() -> Message:
        if not sent.is_set():
            sent.set()
            return {"type": "http.request", "body": raw, "more_body": False}
        await asyncio.Event().wait()  # the gateway watches for a disconnect: there is none
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        await messages.put(message)

    async def call() -> None:
        try:
            await app.chat(scope, receive, send, key, f"req_{getrandbits(96):024x}")
        except PilothouseError as exc:
            outcome.error = exc.detail
        finally:
            await messages.put(None)

    task = asyncio.ensure_future(call())
    buffer = bytearray()
    try:
        while (message := await messages.get()) is not None:
            if message["type"] != "http.response.body":
                continue
            buffer += message.get("body", b"")
            if body.get("stream"):
                for doc in _events(buffer):
                    text = _read(doc, outcome)
                    if text:
                        yield "delta", text
        if not body.get("stream") and buffer:
            text = _read(orjson.loads(bytes(buffer)), outcome)
            if text:
                yield "delta", text
    finally:
        if not task.done():
            task.cancel()  # the browser went away: the gateway records the call as cancelled
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- the form -----------------------------------------------------------------------------


def _version(page: Page, source: Mapping[str, Any]) -> Resolved:
    name = model.check_name(page.request.path_params["name"])
    raw = str(source.get("version", ""))
    version = int(raw) if raw.isdigit() else None
    label = None if version is not None else model.LATEST
    return registry_of(page.runtime).resolve(page.project_id, name, label, version)


def _placeholders(resolved: Resolved) -> set[str]:
    return {m.placeholder for m in resolved.compiled.messages if m.content is None}


def _variables(resolved: Resolved, form: Mapping[str, str]) -> dict[str, Any]:
    """The form's ``var.<name>`` fields; message placeholders take a JSON list of messages."""
    out: dict[str, Any] = {}
    placeholders = _placeholders(resolved)
    for name in resolved.compiled.variables:
        value = form.get(f"var.{name}", "")
        if len(value) > MAX_VALUE:
            raise BadRequest(f"{name}: longer than {MAX_VALUE} characters", param=name)
        if name not in placeholders:
            out[name] = value
        elif value.strip():
            try:
                out[name] = orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                raise BadRequest(f"{name}: expected a JSON list of messages", param=name) from exc
    return out


def _models(page: Page) -> list[str]:
    from pilothouse.gateway.plugin import gateway_of

    config = gateway_of(page.runtime).router.source.get()
    return sorted(name for name, route in config.models.items() if route.operation == "chat")


def _request(page: Page, resolved: Resolved, stream: bool) -> tuple[dict[str, Any], Any]:
    """The chat request of the submitted form, and the prompt rendered (checks variables)."""
    page.require("gateway")
    variables = _variables(resolved, page.form)
    rendered = resolved.render(variables)
    chosen = page.form.get("model", "")
    if chosen and chosen not in _models(page):
        raise BadRequest(f"unknown model {chosen!r}", param="model")
    body: dict[str, Any] = {
        "model": chosen,  # "" lets the prompt's own config choose
        "prompt": {"name": resolved.name, "version": resolved.version, "variables": variables},
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body, rendered


def playground(page: Page) -> Response:
    """GET: the form for one version (``?version=``, default latest). POST: run it, no JS."""
    page.require("read")
    source = page.form if page.is_post else page.request.query_params
    resolved = _version(page, source)
    models = _models(page)
    configured = resolved.config.get("model")
    chosen = DEFAULT_MODEL if DEFAULT_MODEL in models else (configured or "")
    values = {n: "" for n in resolved.compiled.variables}
    rendered, outcome, status = None, None, 200
    if page.is_post:
        chosen = page.form.get("model", chosen)
        values = {n: page.form.get(f"var.{n}", "") for n in values}
        try:
            body, rendered = _request(page, resolved, stream=False)
            outcome = Outcome()
            anyio.from_thread.run(_drain, page, body, outcome)
        except BadRequest as exc:
            outcome, status = Outcome(error=exc.detail), 400
    with page.runtime.db.read() as conn:
        prompt = store.get_prompt(conn, page.project_id, resolved.name)
    return page.render(
        "prompts/playground.html",
        status=status,
        prompt=prompt,
        resolved=resolved,
        values=values,
        placeholders=_placeholders(resolved),
        models=models,
        configured=configured,
        chosen=chosen,
        rendered=rendered,
        outcome=outcome,
        template_text=model.template_text,
        prompt_url=lambda suffix="": prompt_url(page, resolved.name, suffix),
    )


async def _drain(page: Page, body: dict[str, Any], outcome: Outcome) -> None:
    async for _ in run_chat(page, body, outcome):
        pass


def _sse(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def playground_stream(page: Page) -> Response:
    """POST (from the page's script): run the version and stream the answer as SSE."""
    resolved = _version(page, page.form)
    body, rendered = _request(page, resolved, stream=True)

    async def events() -> AsyncIterator[bytes]:
        outcome = Outcome()
        yield _sse("rendered", rendered.messages)
        async for _, text in run_chat(page, body, outcome):
            yield _sse("delta", text)
        if outcome.error is not None:
            yield _sse("error", outcome.error)
        else:
            yield _sse("done", {"model": outcome.model, "usage": outcome.usage})

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"X-Accel-Buffering": "no"},
    )
