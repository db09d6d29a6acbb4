"""``pilothouse gateway``: check the gateway configuration."""

from __future__ import annotations

from pathlib import Path

import click

from pilothouse.cli.context import emit, settings_from


@click.group()
def gateway() -> None:
    """The OpenAI-compatible gateway."""


@gateway.command("check")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def check(ctx: click.Context, path: Path | None, as_json: bool) -> None:
    """Validate a gateway config file (default: the gateway_config setting) and list its
    models and deployments. Exits non-zero naming the bad field. Never prints credentials."""
    from pilothouse.gateway.config import builtin_config, load
    from pilothouse.gateway.providers.base import Provider
    from pilothouse.plugins import pm

    if path is None:
        configured = settings_from(ctx).gateway_config
        path = Path(configured) if configured else None
    classes: list[type[Provider]] = []
    pm.hook.register_providers(register=classes.append)
    config = builtin_config() if path is None else load(path, {c.name for c in classes})
    models = {
        name: {
            "operation": route.operation,
            "deployments": [d.public() for d in route.deployments],
            "fallbacks": list(route.fallbacks),
            "context_window_fallbacks": list(route.context_window_fallbacks),
            "content_policy_fallbacks": list(route.content_policy_fallbacks),
        }
        for name, route in config.models.items()
    }
    lines = [f"{config.source}: {len(models)} model(s), OK"]
    for name, route in config.models.items():
        targets = ", ".join(f"{d.id} -> {d.provider}:{d.model}" for d in route.deployments)
        extra = f" (fallbacks: {', '.join(route.fallbacks)})" if route.fallbacks else ""
        lines.append(f"  {name}: {targets}{extra}")
    emit(
        {"source": config.source, "models": models, "router": vars(config.router)},
        as_json,
        "\n".join(lines),
    )
