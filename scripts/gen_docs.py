#!/usr/bin/env python
"""Regenerate the generated parts of docs/ from the code itself.

    python scripts/gen_docs.py           # rewrite the generated blocks
    python scripts/gen_docs.py --check   # exit 1 if any is stale (tests/test_docs.py runs this)

Sources: the settings registry (docs/settings.md), the click command tree with plugin commands
(docs/cli.md), the pluggy hook specifications (docs/plugins.md) and the OpenAPI document of the
whole app (the route list in docs/api.md). Each block sits between BEGIN/END GENERATED markers;
everything outside the markers is written by hand and left alone.
"""

from __future__ import annotations

import inspect
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

DOCS = Path(__file__).resolve().parent.parent / "docs"
BEGIN = "<!-- BEGIN GENERATED {name}: edit the code, then run scripts/gen_docs.py -->"
END = "<!-- END GENERATED {name} -->"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# --- settings --------------------------------------------------------------------------------


def settings_block() -> str:
    from pilothouse.settings import registry, type_name

    lines = [
        "| Environment variable | `serve` flag | Type | Default | Description |",
        "|---|---|---|---|---|",
    ]
    for info in registry():
        if info.default == "":
            default = "*(empty)*"
        elif isinstance(info.default, bool):
            default = f"`{str(info.default).lower()}`"
        else:
            default = f"`{info.default}`"
        flag = f"`{info.flag}`"
        if info.type is bool:
            flag = f"`{info.flag}` / `--no-{info.flag[2:]}`"
        help_text = info.help + (" Secret: never printed." if info.secret else "")
        lines.append(
            f"| `{info.env}` | {flag} | {_cell(type_name(info))} | {_cell(default)} "
            f"| {_cell(help_text)} |"
        )
    return "\n".join(lines)


# --- CLI -------------------------------------------------------------------------------------


def _commands(
    command: click.Command, ctx: click.Context
) -> Iterator[tuple[click.Command, click.Context]]:
    yield command, ctx
    if isinstance(command, click.Group):
        for name in sorted(command.list_commands(ctx)):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _commands(sub, click.Context(sub, info_name=name, parent=ctx))


def command_paths() -> list[str]:
    """Every command path, e.g. ``pilothouse keys create`` (plugin commands included)."""
    from pilothouse.cli import cli

    root = click.Context(cli, info_name="pilothouse", **cli.context_settings)
    return [ctx.command_path for _, ctx in _commands(cli, root)]


def cli_block() -> str:
    from pilothouse.cli import cli

    out: list[str] = []
    root = click.Context(cli, info_name="pilothouse", **cli.context_settings)
    for command, ctx in _commands(cli, root):
        depth = ctx.command_path.count(" ")
        out.append(f"{'#' * min(2 + depth, 4)} `{ctx.command_path}`")
        out.append("")
        out.append("```")
        out.append(command.get_usage(ctx).strip())
        out.append("```")
        out.append("")
        if command.help:
            out.append(inspect.cleandoc(command.help).replace("\b\n", ""))
            out.append("")
        records = [p.get_help_record(ctx) for p in command.get_params(ctx)]
        options = [r for r in records if r is not None]
        if options:
            out.append("| Option | Description |")
            out.append("|---|---|")
            for opts, help_text in options:
                out.append(f"| `{_cell(opts)}` | {_cell(help_text)} |")
            out.append("")
        if isinstance(command, click.Group):
            subs = [(name, command.get_command(ctx, name)) for name in command.list_commands(ctx)]
            out.append("| Command | Description |")
            out.append("|---|---|")
            for name, sub in sorted(subs):
                if sub is not None and not sub.hidden:
                    summary = sub.get_short_help_str(limit=200)
                    out.append(f"| `{ctx.command_path} {name}` | {_cell(summary)} |")
            out.append("")
    return "\n".join(out).rstrip()


# --- hooks -----------------------------------------------------------------------------------


def hookspecs() -> list[Callable[..., Any]]:
    """The hook specifications, in source order."""
    from pilothouse import hookspecs as module

    specs = [
        f for f in vars(module).values() if inspect.isfunction(f) and hasattr(f, "pilothouse_spec")
    ]
    return sorted(specs, key=lambda f: f.__code__.co_firstlineno)


def hooks_block() -> str:
    out: list[str] = []
    for spec in hookspecs():
        options = spec.pilothouse_spec  # type: ignore[attr-defined]
        signature = str(inspect.signature(spec)).replace("'", "")
        out.append(f"### `{spec.__name__}`")
        out.append("")
        out.append("```python")
        out.append(f"@hookimpl\ndef {spec.__name__}{signature}")
        out.append("```")
        out.append("")
        out.append(inspect.getdoc(spec) or "(undocumented)")
        if options.get("firstresult"):
            out.append("")
            out.append("The first non-``None`` result wins.")
        out.append("")
    return "\n".join(out).rstrip()


# --- API routes ------------------------------------------------------------------------------


@contextmanager
def whole_app() -> Iterator[Any]:
    """The whole ASGI app (plugins included) on a throwaway data directory."""
    from pilothouse.app import create_app
    from pilothouse.runtime import Runtime
    from pilothouse.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="pilothouse-docs-") as data_dir:
        runtime = Runtime(load_settings({"data_dir": data_dir}, environ={}))
        try:
            yield create_app(runtime)
        finally:
            runtime.db.close()


def layers(app: Any) -> list[Any]:
    """The app and the middleware around it, outermost first, down to the FastAPI app."""
    from fastapi import FastAPI

    out = [app]
    while not isinstance(out[-1], FastAPI):
        out.append(vars(out[-1])["app"])  # vars(): wrappers may delegate attribute lookups
    return out


def openapi_document() -> dict[str, Any]:
    with whole_app() as app:
        document: dict[str, Any] = layers(app)[-1].openapi()
    return document


def api_block() -> str:
    document = openapi_document()
    by_tag: dict[str, list[tuple[str, str, str]]] = {}
    methods = ("get", "post", "put", "patch", "delete")
    for path, item in document["paths"].items():
        for method in methods:
            operation = item.get(method)
            if operation is None:
                continue
            tag = (operation.get("tags") or ["other"])[0]
            summary = operation.get("description") or operation.get("summary") or ""
            summary = summary.strip().split("\n\n")[0].replace("\n", " ")
            by_tag.setdefault(tag, []).append((method.upper(), path, summary))
    out: list[str] = []
    for tag in sorted(by_tag):
        out.append(f"### {tag}")
        out.append("")
        out.append("| Method | Path | What it does |")
        out.append("|---|---|---|")
        for method, path, summary in by_tag[tag]:
            out.append(f"| {method} | `{path}` | {_cell(summary)} |")
        out.append("")
    return "\n".join(out).rstrip()


# --- files -----------------------------------------------------------------------------------


def evaluators_block() -> str:
    """The evaluator reference: every evaluator the plugins register (docs/evaluation.md)."""
    from pilothouse.evals import Evaluators
    from pilothouse.plugins import make_plugin_manager

    rows = ["| Evaluator | Kind | Passes at | What it measures | Options |"]
    rows.append("|---|---|---|---|---|")
    for e in Evaluators.from_plugins(make_plugin_manager(load_entry_points=False)).reference():
        options = "<br>".join(f"`{k}`: {_cell(v)}" for k, v in e["options"].items()) or "-"
        rows.append(
            f"| `{e['name']}` | {e['kind']} | {e['threshold']:g} | {_cell(e['description'])} "
            f"| {options} |"
        )
    return "\n".join(rows)


#: page -> generated blocks in it
BLOCKS: dict[str, dict[str, Callable[[], str]]] = {
    "settings.md": {"settings": settings_block},
    "cli.md": {"cli": cli_block},
    "plugins.md": {"hooks": hooks_block},
    "api.md": {"routes": api_block},
    "evaluation.md": {"evaluators": evaluators_block},
}


def render(text: str, blocks: dict[str, str]) -> str:
    """``text`` with each named block between its markers replaced."""
    for name, body in blocks.items():
        begin, end = BEGIN.format(name=name), END.format(name=name)
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
        if not pattern.search(text):
            raise SystemExit(f"missing marker {begin!r}")
        replacement = f"{begin}\n\n{body}\n\n{end}"
        text = pattern.sub(lambda _m, r=replacement: r, text)
    return text


def stale_pages(write: bool) -> list[str]:
    """Pages whose generated blocks differ from the code (rewritten when ``write``)."""
    stale = []
    for page, makers in BLOCKS.items():
        path = DOCS / page
        current = path.read_text()
        wanted = render(current, {name: make() for name, make in makers.items()})
        if wanted != current:
            stale.append(page)
            if write:
                path.write_text(wanted)
    return stale


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = stale_pages(write=not check)
    if check and stale:
        print(f"stale: {', '.join(stale)}; run scripts/gen_docs.py", file=sys.stderr)
        return 1
    for page in stale:
        print(f"updated docs/{page}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
