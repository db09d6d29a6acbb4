"""Prompts from the registry, for applications: fetched over HTTP, cached in the process.

::

    from pilothouse.sdk.prompts import get_prompt

    prompt = get_prompt("support/refund-reply", label="production",
                        fallback="Hello {{customer}}, we are looking into it.")
    messages = prompt.to_openai_messages(customer="Ada")

Configuration: ``PILOTHOUSE_URL`` and ``PILOTHOUSE_API_KEY`` (or :func:`configure`).

Caching: a prompt is served from memory for ``ttl`` seconds. After that the cached copy is
still returned at once while one background thread fetches a fresh one
(stale-while-revalidate). When the server cannot be reached the cached copy keeps being
served; with nothing cached, the caller's ``fallback`` is used (and retried later), and
without one :class:`pilothouse.errors.Unavailable` is raised. A 404 (unknown prompt, label
or version) is always raised: a fallback does not hide a typo.

Rendering happens locally with the same strict engine as the server, and links the prompt
version to the current OpenTelemetry span (``pilothouse.prompt.name``/``.version``) when one
is recording.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from pilothouse.errors import Unavailable
from pilothouse.prompts.client import PromptsClient
from pilothouse.prompts.template import Compiled, PromptTemplate, Ref, compile_prompt, compile_text

DEFAULT_TTL = 60.0
#: Seconds between attempts to reach a server that failed, while serving a cached copy.
RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class Prompt:
    """One prompt version as the application uses it."""

    name: str
    version: int
    type: str
    template: Any
    template_format: str = "mustache"
    config: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    #: "server" when fetched, "fallback" when built from the caller's fallback
    source: str = "server"
    includes: dict[str, dict[str, Any]] = field(default_factory=dict)
    _compiled: PromptTemplate = field(init=False, repr=False, compare=False)
    _includes: dict[Ref, Compiled] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = compile_prompt(self.type, self.template, self.template_format)
        includes: dict[Ref, Compiled] = {}
        for key, value in self.includes.items():
            ref = Ref.parse(key)
            if ref is not None:
                includes[ref] = compile_text(value["template"], value["template_format"], key)
        object.__setattr__(self, "_compiled", compiled)
        object.__setattr__(self, "_includes", includes)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Prompt:
        version = data["version"]
        return cls(
            name=data["name"],
            version=version["version"],
            type=data["type"],
            template=version["template"],
            template_format=version["template_format"],
            config=dict(version["config"]),
            labels=tuple(version.get("labels", ())),
            includes=dict(data.get("includes") or {}),
        )

    @classmethod
    def from_fallback(cls, name: str, fallback: str | list[dict[str, Any]] | Prompt) -> Prompt:
        if isinstance(fallback, Prompt):
            return fallback
        kind = "text" if isinstance(fallback, str) else "chat"
        return cls(name=name, version=0, type=kind, template=fallback, source="fallback")

    @property
    def variables(self) -> tuple[str, ...]:
        return self._compiled.variables

    @property
    def trace_attributes(self) -> dict[str, Any]:
        """Span attributes that link a trace to this prompt version."""
        return {"pilothouse.prompt.name": self.name, "pilothouse.prompt.version": self.version}

    def link_to_trace(self) -> None:
        """Record this prompt version on the current OpenTelemetry span, if one is recording."""
        try:
            from opentelemetry import trace
        except ImportError:  # the SDK works without OpenTelemetry installed
            return
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(self.trace_attributes)

    def render(self, **variables: Any) -> Any:
        """Text prompts: the text. Chat prompts: the list of messages."""
        self.link_to_trace()
        if self.type == "text":
            return self._compiled.render_text(variables, self._includes)
        return self._compiled.render_messages(variables, self._includes)

    def to_openai_messages(self, **variables: Any) -> list[dict[str, Any]]:
        """Messages for ``chat.completions.create`` (a text prompt is one ``user`` message)."""
        self.link_to_trace()
        return self._compiled.render_messages(variables, self._includes)


@dataclass
class _Entry:
    prompt: Prompt
    check_at: float


Key = tuple[str, str | None, int | None]


class Prompts:
    """A registry client with an in-process cache. Thread-safe; share one per process."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        ttl: float = DEFAULT_TTL,
        timeout: float = 5.0,
        project_id: int | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = PromptsClient(
            url, api_key, project_id=project_id, timeout=timeout, transport=transport
        )
        self.ttl = ttl
        self.retry_seconds = min(ttl, RETRY_SECONDS) if ttl > 0 else 0.0
        self.clock = clock
        self._cache: dict[Key, _Entry] = {}
        self._lock = threading.Lock()
        self._refreshing: dict[Key, threading.Thread] = {}
        #: the last error a background refresh met (None after a success)
        self.last_error: Exception | None = None

    def get(
        self,
        name: str,
        label: str = "production",
        version: int | None = None,
        *,
        fallback: str | list[dict[str, Any]] | Prompt | None = None,
    ) -> Prompt:
        """The prompt ``name`` at ``label`` (or ``version``), from cache when possible."""
        key = (name, None if version is not None else label, version)
        entry = self._cache.get(key)
        if entry is not None:
            if entry.check_at <= self.clock():
                self._refresh_in_background(key)
            return entry.prompt
        try:
            return self._fetch(key)
        except Unavailable:
            if fallback is None:
                raise
            prompt = Prompt.from_fallback(name, fallback)
            with self._lock:
                self._cache.setdefault(key, _Entry(prompt, self.clock() + self.retry_seconds))
            return prompt

    def _fetch(self, key: Key) -> Prompt:
        name, label, version = key
        data = self.client.get(name, label=label, version=version, resolve=True)
        prompt = Prompt.from_api(data)
        with self._lock:
            self._cache[key] = _Entry(prompt, self.clock() + self.ttl)
        return prompt

    def _refresh_in_background(self, key: Key) -> None:
        with self._lock:
            if key in self._refreshing:
                return
            thread = threading.Thread(target=self._refresh, args=(key,), daemon=True)
            self._refreshing[key] = thread
        thread.start()

    def _refresh(self, key: Key) -> None:
        try:
            self._fetch(key)
            self.last_error = None
        except Exception as exc:  # noqa: BLE001 - keep serving the cached copy, retry later
            self.last_error = exc
            with self._lock:
                entry = self._cache.get(key)
                if entry is not None:
                    entry.check_at = self.clock() + self.retry_seconds
        finally:
            with self._lock:
                self._refreshing.pop(key, None)

    def wait_for_refreshes(self, timeout: float = 10.0) -> None:
        """Block until background refreshes started so far have finished (for tests, scripts)."""
        with self._lock:
            threads = list(self._refreshing.values())
        for thread in threads:
            thread.join(timeout)

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def close(self) -> None:
        self.wait_for_refreshes()
        self.client.close()


_default: Prompts | None = None
_default_lock = threading.Lock()


def configure(
    url: str | None = None, api_key: str | None = None, *, ttl: float = DEFAULT_TTL, **kwargs: Any
) -> Prompts:
    """Replace the process-wide client that :func:`get_prompt` uses."""
    global _default
    with _default_lock:
        old, _default = _default, Prompts(url, api_key, ttl=ttl, **kwargs)
    if old is not None:
        old.close()
    return _default


def get_prompt(
    name: str,
    label: str = "production",
    version: int | None = None,
    *,
    fallback: str | list[dict[str, Any]] | Prompt | None = None,
) -> Prompt:
    """The prompt from the process-wide client (configured from the environment)."""
    global _default
    client = _default
    if client is None:
        with _default_lock:
            if _default is None:
                _default = Prompts()
            client = _default
    return client.get(name, label, version, fallback=fallback)


__all__ = ["Prompt", "Prompts", "configure", "get_prompt"]
