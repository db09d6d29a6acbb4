"""``pilothouse guardrails``: check a text, list checks and policies, benchmark on a corpus."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from pilothouse.cli.context import emit, json_option, settings_from
from pilothouse.guardrails import bench as benchmark
from pilothouse.guardrails import embeddings
from pilothouse.guardrails.engine import Guardrails
from pilothouse.guardrails.ner import RECOGNIZER
from pilothouse.guardrails.rewrite import Vault

WHERE = click.Choice(["input", "context", "output"])


def _guardrails(ctx: click.Context) -> Guardrails:
    from pilothouse.plugins import pm

    settings = settings_from(ctx)
    path = settings.guardrails_config
    section = None
    if settings.gateway_config:
        from pilothouse.gateway.config import load

        section = load(Path(settings.gateway_config)).guardrails
        embeddings.configure(str(section.get("embedder") or ""))
        RECOGNIZER.configure(str(section.get("ner") or ""))
    return Guardrails.load(pm, Path(path) if path else None, section=section)


@click.group()
def guardrails() -> None:
    """Guardrail checks and policies: try them, list them, measure them."""


@guardrails.command("check")
@click.argument("text", required=False)
@click.option("--policy", "-p", default="default", show_default=True, help="Policy name.")
@click.option("--where", "-w", type=WHERE, default="input", show_default=True)
@json_option
@click.pass_context
def check_cmd(ctx: click.Context, text: str | None, policy: str, where: str, as_json: bool) -> None:
    """Run POLICY on TEXT (or standard input) and show the verdict and findings.

    Exit status 1 when the text is blocked.
    """
    if text is None:
        text = sys.stdin.read()
    guard = _guardrails(ctx)
    decision = guard.check(text, policy, where, Vault())  # type: ignore[arg-type]
    data = decision.public(include_text=not decision.blocked)
    lines = [f"{decision.verdict} (policy {decision.policy}, {decision.latency_ms:.3f} ms)"]
    for outcome in decision.outcomes:
        for f in outcome.findings:
            lines.append(
                f"  {outcome.check:<10} {outcome.action:<12} {f.type:<20} "
                f"[{f.start}:{f.end}] score {f.score:.2f}  {', '.join(f.signals)}"
            )
    if decision.verdict == "modify":
        lines.append(decision.text)
    emit(data, as_json, "\n".join(lines))
    if decision.blocked:
        ctx.exit(1)


@guardrails.command("checks")
@json_option
@click.pass_context
def checks_cmd(ctx: click.Context, as_json: bool) -> None:
    """List the registered checks."""
    guard = _guardrails(ctx)
    rows = [
        {"name": c.name, "spans": c.spans, "wheres": list(c.wheres), "description": c.description}
        for c in sorted(guard.checks.values(), key=lambda c: c.name)
    ]
    emit(rows, as_json, "\n".join(f"{r['name']:<12} {r['description']}" for r in rows))


@guardrails.command("policies")
@json_option
@click.pass_context
def policies_cmd(ctx: click.Context, as_json: bool) -> None:
    """List the named policies and their rules."""
    guard = _guardrails(ctx)
    rows = [p.to_dict() for p in guard.policies.values()]
    lines = []
    for p in rows:
        lines.append(f"{p['name']}: {p['description']}")
        for where in ("input", "context", "output"):
            rules = ", ".join(f"{r['check']}->{r['action']}@{r['threshold']}" for r in p[where])
            if rules:
                lines.append(f"  {where:<8} {rules}")
    emit(rows, as_json, "\n".join(lines))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


@guardrails.command("bench")
@click.argument("corpus", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--check", "check_name", default=None, help="Check to run (default: from the file name)."
)
@click.option("--where", "-w", type=WHERE, default=None, help="Where the text sits.")
@click.option(
    "--split",
    type=click.Choice(["test", "valid", "train", "all"]),
    default="test",
    show_default=True,
    help="Rows to use (stable hash of the row id); `test` is never used for training.",
)
@click.option("--threshold", type=float, default=0.5, show_default=True)
@click.option(
    "--exclude-category",
    "excluded",
    multiple=True,
    help="Leave out rows of this category (repeatable), e.g. out-of-scope identifiers.",
)
@click.option("--categories", is_flag=True, help="Also print the breakdown per category.")
@json_option
@click.pass_context
def bench_cmd(
    ctx: click.Context,
    corpus: Path,
    check_name: str | None,
    where: str | None,
    split: str,
    threshold: float,
    excluded: tuple[str, ...],
    categories: bool,
    as_json: bool,
) -> None:
    """Precision, recall, F1, false-positive rate and latency of a check on CORPUS (JSONL).

    Rows: {"id", "text", "label": 1|0, "category"} or, for PII, {"id", "text", "spans": [...]}.
    """
    guessed, guessed_where = benchmark.guess_check(corpus)
    name = check_name or guessed
    guard = _guardrails(ctx)
    if name not in guard.checks:
        raise click.BadParameter(
            f"unknown check {name!r}; pass --check (one of {', '.join(sorted(guard.checks))})",
            param_hint="--check",
        )
    rows = [r for r in benchmark.rows_of(corpus, split) if r.get("category") not in excluded]
    with click.progressbar(rows, label=f"{name} on {corpus.name}", file=sys.stderr) as bar:
        score = benchmark.score_rows(
            guard.checks[name],
            bar,
            (where or guessed_where),  # type: ignore[arg-type]
            threshold,
        )
    row = score.row()
    if as_json:
        click.echo(json.dumps(row, indent=2))
        return
    head = ["check", "n", "precision", "recall", "f1", "fpr", "p50_ms", "p95_ms", "p99_ms"]
    click.echo("  ".join(f"{h:>9}" for h in head))
    click.echo("  ".join(f"{_fmt(row[h]):>9}" for h in head))
    if categories:
        for key, n in row["categories"].items():
            click.echo(f"  {key:<50} {n}")


__all__ = ["guardrails"]
