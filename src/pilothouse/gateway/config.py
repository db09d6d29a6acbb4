"""The gateway configuration (``pilothouse.yaml``): model aliases and their deployments.

Example::

    models:
      gpt-4o:
        deployments:
          - provider: openai
            model: gpt-4o
            api_key: env:OPENAI_API_KEY
            weight: 3
          - provider: openai
            model: gpt-4o
            base_url: https://my-azure.example/openai/v1
            api_key: env:AZURE_KEY
            timeouts: {connect: 5, first_byte: 120, total: 600}
        fallbacks: [claude]
    router:
      retries: 2
    guardrails:             # guardrail policies, see docs/guardrails.md
      policies:
        support: {input: [{check: pii, action: pseudonymize}], attach: {models: [gpt-4o]}}

Loading is strict: an unknown key or a wrong type is a :class:`ConfigError` naming the path of
the field (``models.gpt-4o.deployments[1].weight: expected a number``). The file is re-read
when its modification time changes (checked at most once a second), so edits apply without a
restart; a bad edit is logged and the last good configuration stays in force.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pilothouse.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timeouts:
    """Seconds: to connect, to the first byte of the answer, for the whole call."""

    connect: float = 5.0
    first_byte: float = 60.0
    total: float = 600.0


@dataclass(frozen=True)
class Deployment:
    """One upstream that can serve a model alias."""

    id: str  # "<alias>#<index>" unless named
    provider: str
    model: str
    base_url: str = ""
    api_key: str = field(default="", repr=False)  # resolved secret, never shown
    api_key_ref: str = ""  # as written in the file, e.g. env:OPENAI_API_KEY
    weight: float = 1.0
    price: dict[str, float] | None = None  # USD per million tokens: input_per_mtok, output_per_mtok
    timeouts: Timeouts = Timeouts()
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    params: dict[str, Any] = field(default_factory=dict)  # merged into every request body

    def public(self) -> dict[str, Any]:
        """What may be shown to an admin: no credentials, no header values."""
        return {
            "id": self.id,
            "provider": self.provider,
            "model": self.model,
            "base_url": self.base_url,
            "api_key": self.api_key_ref or None,
            "weight": self.weight,
            "price": self.price,
            "timeouts": vars(self.timeouts),
        }


@dataclass(frozen=True)
class ModelRoute:
    """A model name clients use, served by weighted deployments with ordered fallbacks."""

    name: str
    deployments: tuple[Deployment, ...]
    fallbacks: tuple[str, ...] = ()
    context_window_fallbacks: tuple[str, ...] = ()
    content_policy_fallbacks: tuple[str, ...] = ()
    operation: str = "chat"  # chat or embeddings: what /v1/models advertises it for


@dataclass(frozen=True)
class RouterPolicy:
    retries: int = 2  # extra attempts on the same deployment for retryable errors
    backoff: float = 0.2  # first retry delay in seconds, doubled each time, with full jitter
    max_backoff: float = 5.0
    breaker_failures: int = 5  # consecutive failures that open a deployment's circuit
    breaker_cooldown: float = 30.0  # seconds a tripped deployment is left out


@dataclass(frozen=True)
class GatewayConfig:
    models: dict[str, ModelRoute]
    router: RouterPolicy = RouterPolicy()
    source: str = "built-in"
    #: the validated ``guardrails:`` section (policies as data), read by the guardrails plugin
    guardrails: dict[str, Any] = field(default_factory=dict)


def builtin_config() -> GatewayConfig:
    """The configuration used when no file is set: the local mock models."""
    return parse(
        {
            "models": {
                "mock/echo": {"deployments": [{"provider": "mock", "model": "echo"}]},
                "mock/lorem": {"deployments": [{"provider": "mock", "model": "lorem"}]},
                "mock/embed": {
                    "operation": "embeddings",
                    "deployments": [{"provider": "mock", "model": "embed"}],
                },
            }
        },
        source="built-in",
    )


# --- parsing ------------------------------------------------------------------------------


def _fail(path: str, reason: str) -> ConfigError:
    return ConfigError(f"{path}: {reason}", param=path)


def _mapping(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, "expected a mapping")
    return value


def _keys(
    value: dict[str, Any], path: str, allowed: set[str], required: frozenset[str] = frozenset()
) -> None:
    for key in value:
        if key not in allowed:
            raise _fail(
                f"{path}.{key}", f"unknown key; expected one of {', '.join(sorted(allowed))}"
            )
    for key in sorted(required - value.keys()):
        raise _fail(f"{path}.{key}", "required")


def _number(value: Any, path: str, *, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(path, "expected a number")
    if value < minimum:
        raise _fail(path, f"expected a number >= {minimum:g}")
    return float(value)


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(path, "expected a non-empty string")
    return value


def _names(value: Any, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise _fail(path, "expected a list of model names")
    return tuple(_string(v, f"{path}[{i}]") for i, v in enumerate(value))


def resolve_secret(ref: str, path: str, environ: dict[str, str] | os._Environ[str]) -> str:
    """``env:NAME`` reads the environment (empty if unset: checked on use); else literal."""
    if ref.startswith("env:"):
        return environ.get(ref[4:], "")
    if ref.startswith("file:"):
        try:
            return Path(ref[5:]).expanduser().read_text().strip()
        except OSError as exc:
            raise _fail(path, f"cannot read {ref[5:]}: {exc.strerror}") from None
    return ref


_DEPLOYMENT_KEYS = {
    "id", "provider", "model", "base_url", "api_key", "weight", "price", "timeouts",
    "headers", "params",
}  # fmt: skip


def _deployment(
    raw: Any, path: str, default_id: str, environ: dict[str, str] | os._Environ[str]
) -> Deployment:
    d = _mapping(raw, path)
    _keys(d, path, _DEPLOYMENT_KEYS, frozenset({"provider", "model"}))
    price = None
    if "price" in d:
        p = _mapping(d["price"], f"{path}.price")
        _keys(p, f"{path}.price", {"input_per_mtok", "output_per_mtok"})
        price = {k: _number(v, f"{path}.price.{k}") for k, v in p.items()}
        if not price:
            raise _fail(f"{path}.price", "expected input_per_mtok and/or output_per_mtok")
    timeouts = Timeouts()
    if "timeouts" in d:
        t = _mapping(d["timeouts"], f"{path}.timeouts")
        _keys(t, f"{path}.timeouts", {"connect", "first_byte", "total"})
        values = {k: _number(v, f"{path}.timeouts.{k}", minimum=0.001) for k, v in t.items()}
        timeouts = Timeouts(**values)
    headers = {}
    if "headers" in d:
        h = _mapping(d["headers"], f"{path}.headers")
        headers = {
            str(k): resolve_secret(
                _string(v, f"{path}.headers.{k}"), f"{path}.headers.{k}", environ
            )
            for k, v in h.items()
        }
    ref = _string(d["api_key"], f"{path}.api_key") if "api_key" in d else ""
    base_url = _string(d["base_url"], f"{path}.base_url") if "base_url" in d else ""
    if base_url and not base_url.startswith(("http://", "https://")):
        raise _fail(f"{path}.base_url", "expected an http:// or https:// URL")
    return Deployment(
        id=_string(d["id"], f"{path}.id") if "id" in d else default_id,
        provider=_string(d["provider"], f"{path}.provider"),
        model=_string(d["model"], f"{path}.model"),
        base_url=base_url.rstrip("/"),
        api_key=resolve_secret(ref, f"{path}.api_key", environ) if ref else "",
        api_key_ref=ref if ref.startswith(("env:", "file:")) else ("********" if ref else ""),
        weight=_number(d.get("weight", 1.0), f"{path}.weight"),
        price=price,
        timeouts=timeouts,
        headers=headers,
        params=dict(_mapping(d.get("params", {}), f"{path}.params")),
    )


def _guardrails(raw: Any) -> dict[str, Any]:
    """The ``guardrails:`` section, validated by the guardrails package against its checks."""
    from pilothouse.guardrails.engine import collect_checks
    from pilothouse.guardrails.policy import parse_section

    return parse_section(raw, collect_checks())


def parse(
    doc: Any,
    *,
    source: str = "<config>",
    providers: set[str] | None = None,
    environ: dict[str, str] | os._Environ[str] | None = None,
) -> GatewayConfig:
    """Validate a loaded YAML document; ``providers`` are the registered provider names."""
    env = os.environ if environ is None else environ
    if doc is None:
        doc = {}
    root = _mapping(doc, "(root)")
    _keys(root, "(root)", {"models", "router", "guardrails"})
    router = RouterPolicy()
    if "router" in root:
        r = _mapping(root["router"], "router")
        _keys(r, "router", set(RouterPolicy.__dataclass_fields__))
        values: dict[str, Any] = {}
        for key, value in r.items():
            number = _number(value, f"router.{key}")
            values[key] = int(number) if key in ("retries", "breaker_failures") else number
        router = RouterPolicy(**values)
    models: dict[str, ModelRoute] = {}
    raw_models = _mapping(root.get("models", {}), "models")
    for name, raw in raw_models.items():
        path = f"models.{name}"
        m = _mapping(raw, path)
        _keys(
            m,
            path,
            {
                "deployments", "fallbacks", "context_window_fallbacks",
                "content_policy_fallbacks", "operation",
            },
            frozenset({"deployments"}),
        )  # fmt: skip
        items = m["deployments"]
        if not isinstance(items, list) or not items:
            raise _fail(f"{path}.deployments", "expected a non-empty list")
        deployments = tuple(
            _deployment(item, f"{path}.deployments[{i}]", f"{name}#{i}", env)
            for i, item in enumerate(items)
        )
        for i, dep in enumerate(deployments):
            if providers is not None and dep.provider not in providers:
                raise _fail(
                    f"{path}.deployments[{i}].provider",
                    f"unknown provider {dep.provider!r}; known: {', '.join(sorted(providers))}",
                )
        if not any(d.weight > 0 for d in deployments):
            raise _fail(f"{path}.deployments", "at least one deployment needs a weight > 0")
        operation = m.get("operation", "chat")
        if operation not in ("chat", "embeddings", "completions"):
            raise _fail(f"{path}.operation", "expected chat, embeddings or completions")
        models[str(name)] = ModelRoute(
            name=str(name),
            deployments=deployments,
            fallbacks=_names(m.get("fallbacks", []), f"{path}.fallbacks"),
            context_window_fallbacks=_names(
                m.get("context_window_fallbacks", []), f"{path}.context_window_fallbacks"
            ),
            content_policy_fallbacks=_names(
                m.get("content_policy_fallbacks", []), f"{path}.content_policy_fallbacks"
            ),
            operation=operation,
        )
    for route in models.values():
        for kind in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
            for i, target in enumerate(getattr(route, kind)):
                if target not in models:
                    raise _fail(f"models.{route.name}.{kind}[{i}]", f"unknown model {target!r}")
    guardrails = _guardrails(root["guardrails"]) if "guardrails" in root else {}
    return GatewayConfig(models=models, router=router, source=source, guardrails=guardrails)


def load(path: Path, providers: set[str] | None = None) -> GatewayConfig:
    """Read and validate one file; errors name the file and the field."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    try:
        return parse(doc, source=str(path), providers=providers)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.detail}", param=exc.param) from None


class ConfigSource:
    """The configuration in force, re-read when the file changes (checked at most once a second)."""

    def __init__(self, path: Path | None, providers: set[str] | None = None) -> None:
        self.path = path
        self.providers = providers
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self.current = self._initial()

    def _initial(self) -> GatewayConfig:
        if self.path is None:
            return builtin_config()
        self._stamp = self._stat()
        self._checked = time.monotonic()
        return load(self.path, self.providers)

    def get(self) -> GatewayConfig:
        """The configuration; cheap: a clock read except once a second."""
        if self.path is not None:
            now = time.monotonic()
            if now - self._checked >= 1.0:
                self._checked = now
                self.reload_if_changed()
        return self.current

    def _stat(self) -> tuple[int, int] | None:
        assert self.path is not None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def reload_if_changed(self) -> bool:
        """Reload when the file's mtime or size moved; keep the old config if the new one is bad."""
        stamp = self._stat()
        if stamp is None or stamp == self._stamp:
            return False
        self._stamp = stamp
        assert self.path is not None
        try:
            self.current = load(self.path, self.providers)
        except ConfigError as exc:
            log.error("gateway config not reloaded, keeping the previous one: %s", exc.detail)
            return False
        log.info("gateway config reloaded from %s", self.path)
        return True
