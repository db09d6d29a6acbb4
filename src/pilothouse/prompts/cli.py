"""``pilothouse prompts``: the registry from the command line, through the server's API.

These commands talk HTTP to a running server (``--url``/``PILOTHOUSE_URL`` and
``--key``/``PILOTHOUSE_API_KEY``), so CI can sync and promote prompts with nothing but an API
key: no database credentials leave the server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from pilothouse.prompts.client import DEFAULT_URL, PromptsClient
from pilothouse.prompts.files import PromptFile, read_folder, write_file


def _client(ctx: click.Context) -> PromptsClient:
    opts = ctx.find_object(dict) or {}
    return PromptsClient(
        opts.get("prompts_url"), opts.get("prompts_key"), project_id=opts.get("prompts_project")
    )


def _emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


@click.group()
@click.option(
    "--url",
    envvar="PILOTHOUSE_URL",
    default=DEFAULT_URL,
    show_default=True,
    help="Server URL [PILOTHOUSE_URL].",
)
@click.option(
    "--key", envvar="PILOTHOUSE_API_KEY", default=None, help="API key [PILOTHOUSE_API_KEY]."
)
@click.option(
    "--project-id",
    envvar="PILOTHOUSE_PROJECT_ID",
    type=int,
    default=None,
    help="Project (default: the API key's own) [PILOTHOUSE_PROJECT_ID].",
)
@click.pass_context
def prompts(ctx: click.Context, url: str, key: str | None, project_id: int | None) -> None:
    """Prompt registry: versions, labels, diffs, and prompts as code."""
    obj = ctx.ensure_object(dict)
    obj.update(prompts_url=url, prompts_key=key, prompts_project=project_id)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@prompts.command("list")
@click.option("--search", "-q", default=None, help="Text in name or description.")
@click.option("--tag", default=None, help="Only prompts with this tag.")
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, search: str | None, tag: str | None, as_json: bool) -> None:
    """List prompts with their labels."""
    with _client(ctx) as client:
        rows = client.list(search=search, tag=tag)
    if as_json:
        _emit(rows)
        return
    for r in rows:
        labels = " ".join(f"{k}=v{v}" for k, v in r["labels"].items())
        click.echo(f"{r['name']:<40} {r['type']:<5} {labels}")


@prompts.command("show")
@click.argument("name")
@click.option("--label", default=None, help="Label (default: latest).")
@click.option("--version", type=int, default=None, help="Version number.")
@json_option
@click.pass_context
def show(
    ctx: click.Context, name: str, label: str | None, version: int | None, as_json: bool
) -> None:
    """Show one version of prompt NAME."""
    with _client(ctx) as client:
        prompt = client.get(name, label=label, version=version)
    if as_json:
        _emit(prompt)
        return
    v = prompt["version"]
    click.echo(f"{prompt['name']} v{v['version']} ({prompt['type']}, {v['template_format']})")
    click.echo(f"labels: {', '.join(v['labels']) or '-'}  by {v['author']} at {v['created_at']}")
    if v["message"]:
        click.echo(f"message: {v['message']}")
    if v["config"]:
        click.echo(f"config: {json.dumps(v['config'])}")
    click.echo("")
    if isinstance(v["template"], str):
        click.echo(v["template"])
    else:
        for m in v["template"]:
            if "placeholder" in m:
                click.echo(f"[{m['placeholder']}: message list]")
            else:
                click.echo(f"[{m['role']}]\n{m['content']}")


def _variables(pairs: tuple[str, ...], vars_json: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if vars_json:
        loaded = json.loads(Path(vars_json).read_text(encoding="utf-8"))
        if not isinstance(loaded, dict):
            raise click.BadParameter("expected a JSON object", param_hint="--vars-json")
        out.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--var")
        out[key] = value
    return out


@prompts.command("render")
@click.argument("name")
@click.option("--label", default=None, help="Label (default: latest).")
@click.option("--version", type=int, default=None, help="Version number.")
@click.option("--var", "pairs", multiple=True, metavar="NAME=VALUE", help="A variable.")
@click.option("--vars-json", type=click.Path(dir_okay=False), help="Variables from a JSON file.")
@json_option
@click.pass_context
def render(
    ctx: click.Context,
    name: str,
    label: str | None,
    version: int | None,
    pairs: tuple[str, ...],
    vars_json: str | None,
    as_json: bool,
) -> None:
    """Render prompt NAME on the server with variables."""
    with _client(ctx) as client:
        result = client.render(name, _variables(pairs, vars_json), label=label, version=version)
    if as_json:
        _emit(result)
    elif result["text"] is not None:
        click.echo(result["text"])
    else:
        for m in result["messages"]:
            click.echo(f"[{m['role']}]\n{m.get('content', '')}")


@prompts.command("diff")
@click.argument("name")
@click.argument("old", type=int)
@click.argument("new", type=int)
@json_option
@click.pass_context
def diff(ctx: click.Context, name: str, old: int, new: int, as_json: bool) -> None:
    """Unified diff of template and config between versions OLD and NEW of NAME."""
    with _client(ctx) as client:
        result = client.diff(name, old, new)
    if as_json:
        _emit(result)
    elif result["identical"]:
        click.echo(f"{name}: versions {old} and {new} are identical")
    else:
        click.echo(result["unified"], nl=False)


@prompts.command("label")
@click.argument("name")
@click.argument("label")
@click.argument("version", type=int)
@click.option("--reason", default="", help="Recorded with the move.")
@click.pass_context
def label_cmd(ctx: click.Context, name: str, label: str, version: int, reason: str) -> None:
    """Point LABEL of prompt NAME at VERSION."""
    with _client(ctx) as client:
        moved = client.move_label(name, label, version, reason)
    before = moved["previous_version"]
    click.echo(f"{name}: {label} v{before if before else '-'} -> v{moved['version']}")


@prompts.command("rollback")
@click.argument("name")
@click.argument("label")
@click.option("--reason", default="", help="Recorded with the move.")
@click.pass_context
def rollback(ctx: click.Context, name: str, label: str, reason: str) -> None:
    """Point LABEL of NAME back at the version it had before its last move."""
    with _client(ctx) as client:
        moved = client.rollback(name, label, reason)
    click.echo(f"{name}: {label} v{moved['previous_version']} -> v{moved['version']}")


@prompts.command("history")
@click.argument("name")
@click.option("--label", default=None, help="Only this label's moves.")
@json_option
@click.pass_context
def history(ctx: click.Context, name: str, label: str | None, as_json: bool) -> None:
    """Label moves of prompt NAME, newest first: who, when, from, to."""
    with _client(ctx) as client:
        events = client.history(name, label)
    if as_json:
        _emit(events)
        return
    for e in events:
        old = f"v{e['from_version']}" if e["from_version"] else "-"
        new = f"v{e['to_version']}" if e["to_version"] else "(removed)"
        why = f"  {e['reason']}" if e["reason"] else ""
        click.echo(f"{e['created_at']}  {e['label']:<12} {old} -> {new}  by {e['actor']}{why}")


@prompts.command("promote")
@click.argument("source")
@click.argument("target")
@click.argument("names", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Say what would move; change nothing.")
@click.pass_context
def promote(
    ctx: click.Context, source: str, target: str, names: tuple[str, ...], dry_run: bool
) -> None:
    """Point label TARGET wherever SOURCE points, for NAMES or every prompt carrying SOURCE.

    Example: pilothouse prompts promote staging production
    """
    with _client(ctx) as client:
        rows = client.list()
        wanted = set(names)
        missing = wanted - {r["name"] for r in rows}
        if missing:
            raise click.BadParameter(f"no prompt named {sorted(missing)[0]!r}", param_hint="NAMES")
        for r in rows:
            if wanted and r["name"] not in wanted:
                continue
            version = r["labels"].get(source)
            if version is None:
                if wanted:
                    raise click.ClickException(f"{r['name']} has no label {source!r}")
                continue
            if r["labels"].get(target) == version:
                click.echo(f"{r['name']}: {target} already at v{version}")
                continue
            if not dry_run:
                client.move_label(r["name"], target, version, f"promoted from {source}")
            click.echo(f"{r['name']}: {target} -> v{version}{' (dry run)' if dry_run else ''}")


@prompts.command("pull")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--label", default="latest", show_default=True, help="Which version to write.")
@click.pass_context
def pull(ctx: click.Context, folder: Path, label: str) -> None:
    """Write every prompt (its LABEL version) as a file under FOLDER."""
    written = 0
    with _client(ctx) as client:
        for row in client.list():
            if label not in row["labels"]:
                click.echo(f"skipped {row['name']}: no label {label!r}")
                continue
            prompt = client.get(row["name"], label=label)
            path = write_file(folder, PromptFile.from_api(prompt))
            click.echo(f"wrote {path} (v{prompt['version']['version']})")
            written += 1
    click.echo(f"{written} prompt(s) written to {folder}")


def _push_one(
    client: PromptsClient, item: PromptFile, label: str | None, message: str, dry_run: bool
) -> tuple[str, str]:
    """Sync one file; returns (what happened, a line for people)."""
    from pilothouse.errors import NotFound

    labels = [label] if label else []
    body: dict[str, Any] = {
        "template": item.template,
        "template_format": item.template_format,
        "config": item.config,
        "message": message,
        "labels": labels,
    }
    try:
        current = client.get(item.name)
    except NotFound:
        current = None
    suffix = " (dry run)" if dry_run else ""
    if current is None:
        if not dry_run:
            created = client.create(
                {
                    **body,
                    "name": item.name,
                    "type": item.type,
                    "description": item.description,
                    "tags": item.tags,
                }
            )
            return "created", f"created {item.name} v{created['version']['version']}{suffix}"
        return "created", f"created {item.name} v1{suffix}"
    if current["type"] != item.type:
        raise click.ClickException(
            f"{item.path}: {item.name} is a {current['type']} prompt in the registry, "
            f"{item.type} in the file; a prompt's type cannot change"
        )
    latest = current["version"]
    meta: dict[str, Any] = {}
    if item.description != current["description"]:
        meta["description"] = item.description
    if sorted(set(item.tags)) != current["tags"]:
        meta["tags"] = item.tags
    if meta and not dry_run:
        client.update(item.name, meta)
    if item.content_hash != latest["content_hash"]:
        if not dry_run:
            saved = client.save_version(item.name, body)
            new = saved["version"]["version"]
        else:
            new = latest["version"] + 1
        line = f"updated {item.name} v{latest['version']} -> v{new}{suffix}"
        return "updated", line + (f" ({label})" if label else "")
    note = " (metadata)" if meta else ""
    if label and current["labels"].get(label) != latest["version"]:
        if not dry_run:
            client.move_label(item.name, label, latest["version"], message)
        note += f" ({label} -> v{latest['version']})"
    return "unchanged", f"unchanged {item.name} v{latest['version']}{note}{suffix}"


@prompts.command("push")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--label", default=None, help="Also point this label (e.g. staging) at each.")
@click.option("--message", "-m", default="", help="Commit message for new versions.")
@click.option("--dry-run", is_flag=True, help="Report what would change; change nothing.")
@json_option
@click.pass_context
def push(
    ctx: click.Context,
    folder: Path,
    label: str | None,
    message: str,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Sync FOLDER's prompt files to the registry: a new version only for changed files."""
    items = read_folder(folder)
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    report = []
    with _client(ctx) as client:
        for item in items:
            what, line = _push_one(client, item, label, message or f"push {item.path}", dry_run)
            counts[what] += 1
            report.append({"name": item.name, "result": what, "detail": line})
            if not as_json:
                click.echo(line)
    if as_json:
        _emit({"dry_run": dry_run, "counts": counts, "prompts": report})
        return
    click.echo(
        f"{counts['created']} created, {counts['updated']} updated, "
        f"{counts['unchanged']} unchanged{' (dry run)' if dry_run else ''}"
    )
