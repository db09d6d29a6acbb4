"""The one registry of settings.

Every setting is a field of :class:`Settings` with a type, a default and help text. The same
registry drives environment variables (``PILOTHOUSE_<NAME>``), the flags of ``pilothouse
serve``, ``pilothouse settings`` and the generated ``docs/settings.md``.

Precedence, highest first: explicit overrides (CLI flags), environment, defaults.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilothouse.errors import ConfigError

ENV_PREFIX = "PILOTHOUSE_"


def setting(default: Any, help: str, *, choices: tuple[str, ...] = (), secret: bool = False) -> Any:
    """Declare one setting: its default and the help text shown in the CLI and docs."""
    return field(default=default, metadata={"help": help, "choices": choices, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """Pilothouse configuration. Build with :func:`load_settings`."""

    data_dir: Path = setting(Path(".pilothouse"), "Directory for the embedded database and files.")
    database_url: str = setting(
        "",
        "SQLAlchemy URL of the database. Empty means sqlite:///<data_dir>/pilothouse.db; "
        "use postgresql+psycopg://user@host:5432/db for PostgreSQL.",
    )
    host: str = setting("127.0.0.1", "Interface the server listens on.")
    port: int = setting(4141, "TCP port the server listens on.")
    migrate: bool = setting(True, "Apply database migrations when the server starts.")
    server_processes: int = setting(
        1,
        "Server processes sharing the port (SO_REUSEPORT, the kernel spreads connections), each "
        "with its own runtime, as replicas behind a load balancer; one per core at most. Limits "
        "held in memory are per process: set a Redis URL for exact shared limits.",
    )
    redis_url: str = setting(
        "",
        "Redis URL (redis://host:6379/0). When set, background jobs use Redis and workers, "
        "and API-key revocations reach every server at once (pub/sub).",
    )
    workers_inline: bool = setting(
        True, "Run a background-job consumer inside the server process (embedded mode)."
    )
    job_workers: int = setting(
        2, "Threads of the in-process job consumer and of `pilothouse worker`."
    )
    job_queue: str = setting(
        "pilothouse",
        "Name of the job queue (its Redis key prefix); servers and workers sharing a Redis "
        "use the same name, separate deployments different ones.",
    )
    admin_email: str = setting("admin@localhost", "Email of the first administrator user.")
    admin_password: str = setting(
        "",
        "Password of the first administrator. Empty: one is generated and printed once.",
        secret=True,
    )
    admin_key: str = setting(
        "",
        "API key of the first administrator. Empty: one is generated and printed once.",
        secret=True,
    )
    max_body_bytes: int = setting(10 * 1024 * 1024, "Largest request body accepted, in bytes.")
    key_cache_ttl: float = setting(
        30.0,
        "Seconds an API-key lookup stays cached in memory. Revocations apply at once in the "
        "process that revokes, and in every other process when redis_url is set; without "
        "Redis other processes see them after this many seconds.",
    )
    secret_key: str = setting(
        "",
        "Key that signs web UI session cookies. Empty: one is generated and kept in "
        "<data_dir>/secret_key. Set the same value on every server behind a load balancer.",
        secret=True,
    )
    web_session_hours: int = setting(12, "Hours a web UI login lasts without activity.")
    web_cookie_secure: str = setting(
        "auto",
        "Mark web UI cookies Secure: auto = when the request came over HTTPS.",
        choices=("auto", "always", "never"),
    )
    web_login_attempts: int = setting(
        10, "Web UI login attempts allowed per minute for one client address and email."
    )
    tracing_queue_spans: int = setting(
        200_000,
        "Spans waiting to be written beyond which trace ingestion answers 503 with Retry-After.",
    )
    tracing_batch_spans: int = setting(
        20_000, "Most spans the trace writer commits in one transaction (group commit)."
    )
    tracing_buffer_spans: int = setting(
        50_000,
        "Spans the gateway may buffer for the trace writer; beyond it the oldest spill to "
        "<data_dir>/spill/*.jsonl and are replayed later.",
    )
    tracing_writer_process: bool = setting(
        False,
        "Write submitted spans (the gateway's) from a child process, off the server's event "
        "loop and GIL: recommended for a busy gateway.",
    )
    tracing_retention_days: int = setting(
        0, "Days traces are kept when the project sets no retention_days (0 keeps them forever)."
    )
    otlp_max_decompressed_bytes: int = setting(
        64 * 1024 * 1024, "Largest OTLP request accepted after gzip decompression, in bytes."
    )
    otlp_grpc_enabled: bool = setting(
        False, "Also accept OTLP/gRPC trace exports (needs the grpc extra: pip install grpcio)."
    )
    otlp_grpc_port: int = setting(4317, "TCP port of the OTLP/gRPC receiver (on `host`).")
    gateway_limits_backend: str = setting(
        "auto",
        "Where gateway rate limits and budgets are counted: memory (one process), redis (shared "
        "by replicas; needs redis_url) or auto (redis when redis_url is set).",
        choices=("auto", "memory", "redis"),
    )
    gateway_redis_prefix: str = setting(
        "ph:gw:", "Prefix of the gateway's Redis keys (limits, budgets, cache)."
    )
    gateway_spend_flush_seconds: float = setting(
        5.0, "Seconds between batched writes of gateway spend to the database."
    )
    gateway_cache_backend: str = setting(
        "memory",
        "Where cached gateway responses live: memory (per process), database (survives "
        "restarts) or redis (shared by replicas; needs redis_url).",
        choices=("memory", "database", "redis"),
    )
    gateway_cache_ttl: float = setting(
        3600.0, "Seconds a cached gateway response stays valid (a request may ask for less)."
    )
    gateway_cache_models: str = setting(
        "",
        "Model aliases (comma-separated glob patterns) whose answers are cached without the "
        "request or key asking; x-pilothouse-cache: off still skips the cache.",
    )
    gateway_cache_max_entries: int = setting(
        10_000, "Most responses kept by the memory cache (least recently used go first)."
    )
    prompts_cache_ttl: float = setting(
        10.0,
        "Seconds a resolved prompt (name@label) stays cached in memory; changes made in the "
        "same process apply at once, in other processes within this time.",
    )
    gateway_config: str = setting(
        "",
        "Path of the gateway configuration (pilothouse.yaml: models, deployments, router). "
        "Empty: built-in mock models only. Edits apply without a restart.",
    )
    gateway_capture_content: bool = setting(
        True, "Record gateway request and response messages in traces."
    )
    gateway_content_max_chars: int = setting(
        20_000, "Longest string kept per message in gateway traces (0: no limit)."
    )
    gateway_max_connections: int = setting(
        1000, "Most open outbound connections of the gateway to its upstreams."
    )
    gateway_http_client: str = setting(
        "pooled",
        "Outbound HTTP client of the gateway: pooled (built-in HTTP/1.1 keep-alive pool, "
        "fastest) or aiohttp.",
        choices=("pooled", "aiohttp"),
    )
    metrics_token: str = setting(
        "",
        "Bearer token that GET /metrics asks for. Empty: the metrics are public (then keep "
        "the port private).",
        secret=True,
    )
    guardrails_config: str = setting(
        "",
        "Path of the guardrail policies file (YAML: a `policies:` mapping, optionally under "
        "`guardrails:`). Empty: built-in policies only (default, strict, redact-pii, monitor). "
        "Policies may also live under `guardrails:` in the gateway_config file.",
    )
    guardrails_gateway_policy: str = setting(
        "",
        "Guardrail policy applied to gateway calls that no API key limit (`guardrail_policy`) "
        "or policy `attach` rule selects. Empty: no guardrails unless selected.",
    )
    evals_concurrency: int = setting(
        8, "Items an experiment works on at once (per run; an experiment's config may override)."
    )
    evals_retries: int = setting(
        2, "Retries of a target call that failed with a retryable error (429, 5xx, timeouts)."
    )
    evals_embedding_model: str = setting(
        "mock/embed",
        "Gateway model (a `/v1/embeddings` alias) of the embedding-similarity evaluator.",
    )
    evals_judge_model: str = setting(
        "",
        "Gateway model of the llm-judge evaluator when its config names none. Empty: required "
        "in each judge's config.",
    )
    log_format: str = setting("text", "Log format.", choices=("text", "json"))
    log_level: str = setting("info", "Log level.", choices=("debug", "info", "warning", "error"))

    @property
    def effective_database_url(self) -> str:
        """The database URL, with the embedded SQLite default filled in."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'pilothouse.db').resolve()}"

    def public(self) -> dict[str, Any]:
        """Values safe to show: secrets masked."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = "********" if f.metadata["secret"] and value else value
        return out


@dataclass(frozen=True)
class SettingInfo:
    """Description of one setting, for the CLI and the docs."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...]
    secret: bool

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


_TYPES: dict[str, type] = {"Path": Path, "str": str, "int": int, "float": float, "bool": bool}


def registry() -> list[SettingInfo]:
    """All settings, in declaration order."""
    out = []
    for f in dataclasses.fields(Settings):
        out.append(
            SettingInfo(
                name=f.name,
                type=_TYPES[str(f.type)],
                default=f.default,
                help=f.metadata["help"],
                choices=f.metadata["choices"],
                secret=f.metadata["secret"],
            )
        )
    return out


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_value(info: SettingInfo, raw: Any) -> Any:
    """Turn a raw (usually string) value into the setting's type, or raise ConfigError."""
    source = info.env
    try:
        if info.type is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError
        if info.type is Path:
            return Path(raw)
        value = info.type(raw)
    except (TypeError, ValueError):
        expected = {bool: "true or false", int: "an integer", float: "a number"}.get(
            info.type, info.type.__name__
        )
        raise ConfigError(f"{source}={raw!r} is invalid: expected {expected}") from None
    if info.choices and value not in info.choices:
        raise ConfigError(f"{source}={raw!r} is invalid: expected one of {', '.join(info.choices)}")
    if info.type in (int, float) and value < 0:
        raise ConfigError(f"{source}={raw!r} is invalid: expected a value >= 0")
    return value


def _check(settings: Settings) -> None:
    url = settings.effective_database_url
    if not url.startswith(("sqlite:", "postgresql")):
        raise ConfigError(
            f"{ENV_PREFIX}DATABASE_URL={url!r} is invalid: expected sqlite:///path or "
            "postgresql+psycopg://user@host:port/db"
        )
    if settings.server_processes < 1:
        raise ConfigError(
            f"{ENV_PREFIX}SERVER_PROCESSES={settings.server_processes} is invalid: expected >= 1"
        )
    if settings.port > 65535:
        raise ConfigError(f"{ENV_PREFIX}PORT={settings.port} is invalid: expected 0-65535")
    if settings.redis_url and not settings.redis_url.startswith(
        ("redis://", "rediss://", "unix://")
    ):
        raise ConfigError(
            f"{ENV_PREFIX}REDIS_URL={settings.redis_url!r} is invalid: expected redis://host:port/db"
        )


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build settings from defaults, the environment and explicit overrides (None = not given)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for info in registry():
        if overrides is not None and overrides.get(info.name) is not None:
            values[info.name] = parse_value(info, overrides[info.name])
        elif info.env in env:
            values[info.name] = parse_value(info, env[info.env])
    settings = Settings(**values)
    _check(settings)
    return settings


def type_name(info: SettingInfo) -> str:
    """How the docs and CLI name a setting's type."""
    if info.choices:
        return " | ".join(info.choices)
    return {Path: "path", str: "string", int: "integer", float: "number", bool: "boolean"}[
        info.type
    ]


__all__ = ["SettingInfo", "Settings", "load_settings", "parse_value", "registry", "type_name"]
