"""``pilothouse datasets ...`` and ``pilothouse eval ...``: run in-process on the store of the
settings (``--data-dir``/``--database-url``), no server needed."""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from pilothouse.cli.context import emit, json_option, runtime_from, settings_from
from pilothouse.errors import PilothouseError
from pilothouse.evals import datasets as ds
from pilothouse.evals import experiments, gate
from pilothouse.runtime import Runtime
from pilothouse.store import evals as store
from pilothouse.store import identity
from pilothouse.store import traces as trace_store

project_option = click.option(
    "--project", default="default", show_default=True, help="Project name or id."
)


def _project_id(runtime: Runtime, project: str) -> int:
    with runtime.db.read() as conn:
        row = (
            identity.get_project(conn, int(project))
            if project.isdigit()
            else identity.project_by_name(conn, project)
        )
    return int(row["id"])


def _datasets(runtime: Runtime) -> ds.Datasets:
    from pilothouse.evals.api import datasets_of

    return datasets_of(runtime)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except PilothouseError as exc:
        raise click.ClickException(exc.detail) from None


# --- datasets ---------------------------------------------------------------------------------


@click.group()
def datasets() -> None:
    """Versioned evaluation datasets: push, list, show, export, from traces."""


@datasets.command("push")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="Dataset name (default: the file name without extension).")
@click.option("--append", is_flag=True, help="Add the items instead of replacing the dataset.")
@click.option("--message", default="", help="Why this version exists.")
@project_option
@json_option
@click.pass_context
def push(
    ctx: click.Context,
    file: Path,
    name: str | None,
    append: bool,
    message: str,
    project: str,
    as_json: bool,
) -> None:
    """Push FILE (.jsonl or .csv) as a new version of a dataset (created if new).

    Without --append the dataset becomes exactly the file's items; nothing changes (and no
    version is made) when the file holds what the latest version holds.
    """
    name = name or file.stem
    with runtime_from(ctx) as runtime, _errors():
        project_id = _project_id(runtime, project)
        items = ds.read_file(file.name, file.read_text())
        datasets_ = _datasets(runtime)
        with runtime.db.read() as conn:
            exists = store.find_dataset(conn, project_id, name) is not None
        message = message or f"pushed {file.name}"
        if exists:
            change = datasets_.write(
                project_id, name, items, replace=not append, author="cli", message=message
            )
        else:
            change = datasets_.create(project_id, name, items=items, author="cli", message=message)
    line = (
        f"{name}: version {change.version} ({change.item_count} items, +{change.added} "
        f"-{change.removed})"
        if change.created
        else f"{name}: unchanged at version {change.version} ({change.item_count} items)"
    )
    emit(
        {"name": name, "version": change.version, "created": change.created,
         "items": change.item_count, "added": change.added, "removed": change.removed},
        as_json,
        line,
    )  # fmt: skip


@datasets.command("list")
@project_option
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, project: str, as_json: bool) -> None:
    """List datasets with their latest version."""
    with runtime_from(ctx) as runtime, _errors(), runtime.db.read() as conn:
        rows = [dict(r) for r in store.list_datasets(conn, _project_id(runtime, project))]
    if as_json:
        emit(rows, True, "")
        return
    for r in rows:
        click.echo(f"{r['name']}\tv{r['latest_version']}\t{r['description']}")


@datasets.command("show")
@click.argument("name")
@click.option("--version", type=int, help="Default: latest.")
@project_option
@json_option
@click.pass_context
def show(ctx: click.Context, name: str, version: int | None, project: str, as_json: bool) -> None:
    """Show a dataset's versions and the item count of one version."""
    with runtime_from(ctx) as runtime, _errors():
        row, number, items = _datasets(runtime).items(_project_id(runtime, project), name, version)
        with runtime.db.read() as conn:
            versions = [dict(v) for v in store.list_versions(conn, row["id"])]
    data = {**dict(row), "version": number, "items": len(items), "versions": versions}
    lines = [f"{name} (version {number}, {len(items)} items)"] + [
        f"  v{v['version']}\t{v['item_count']} items\t{v['created_at']:%Y-%m-%d %H:%M}\t"
        f"{v['message']}"
        for v in versions
    ]
    emit(data, as_json, "\n".join(lines))


@datasets.command("export")
@click.argument("name")
@click.option("--version", type=int, help="Default: latest.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File.")
@project_option
@click.pass_context
def export(
    ctx: click.Context,
    name: str,
    version: int | None,
    fmt: str,
    output: Path | None,
    project: str,
) -> None:
    """Write one version as JSONL or CSV (to stdout by default)."""
    with runtime_from(ctx) as runtime, _errors():
        _, _, items = _datasets(runtime).items(_project_id(runtime, project), name, version)
    text = ds.to_csv(items) if fmt == "csv" else "".join(ds.to_jsonl(items))
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)


@datasets.command("from-traces")
@click.argument("name")
@click.option("--model", help="Only traces of this model.")
@click.option("--tag", "tags", multiple=True, help="Only traces with this tag (repeatable).")
@click.option("--text", help="Only traces whose input or output contains this text.")
@click.option("--status", type=click.Choice(["ok", "error"]))
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@project_option
@json_option
@click.pass_context
def from_traces(
    ctx: click.Context,
    name: str,
    model: str | None,
    tags: tuple[str, ...],
    text: str | None,
    status: str | None,
    limit: int,
    project: str,
    as_json: bool,
) -> None:
    """Add recent traces matching the filters to dataset NAME (the trace id is kept)."""
    where = trace_store.TraceFilter(model=model, tags=tags, text=text, status=status)
    with runtime_from(ctx) as runtime, _errors():
        change = _datasets(runtime).from_traces(
            _project_id(runtime, project), name, where, limit=limit, author="cli"
        )
    emit(
        {"version": change.version, "added": change.added},
        as_json,
        f"{name}: version {change.version} (+{change.added} items)",
    )


# --- eval -------------------------------------------------------------------------------------


@click.group("eval")
def eval_group() -> None:
    """Run experiments and the CI gate, compare experiments, list evaluators."""


def _progress(label: str) -> Callable[[int, int], None]:
    """A progress bar on stderr fed by (done, total)."""
    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = click.progressbar(
                length=total, label=label, file=sys.stderr, show_pos=True
            )
            bar.__enter__()
            state["seen"] = 0
        bar.update(done - state["seen"])
        state["seen"] = done
        if done >= total:
            bar.__exit__(None, None, None)

    return update


@eval_group.command("run")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="JUnit XML file.")
@click.option("--summary", type=click.Path(dir_okay=False, path_type=Path), help="Markdown file.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="JSON results file ('-' for stdout).")  # fmt: skip
@click.option("--ephemeral", is_flag=True, help="Use a fresh store in a temporary directory.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def run_cmd(
    ctx: click.Context,
    config: Path,
    junit: Path | None,
    summary: Path | None,
    json_path: Path | None,
    ephemeral: bool,
    quiet: bool,
) -> None:
    """Run the suite in CONFIG (eval.yaml) and check its thresholds.

    Exit status: 0 every threshold holds, 1 a threshold failed, 2 config or infrastructure
    error.
    """
    try:
        doc = gate.load(config)
        with contextlib.ExitStack() as stack:
            overrides: dict[str, Any] = {}
            if ephemeral:
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="pilothouse-eval-"))
                overrides = {"data_dir": Path(tmp), "database_url": ""}
            runtime = Runtime(settings_from(ctx, **overrides))
            stack.callback(runtime.db.close)
            stack.callback(runtime.traces.close)
            runtime.migrate()
            if ephemeral:
                runtime.bootstrap()
            outcome = gate.run(
                runtime, doc, (lambda name: None) if quiet else lambda name: _progress(name)
            )
    except gate.GateError as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(2)
    except Exception as exc:  # noqa: BLE001 - any infrastructure failure is exit status 2
        click.echo(f"Error: {type(exc).__name__}: {exc}", err=True)
        ctx.exit(2)
    if junit is not None:
        junit.write_bytes(gate.junit(outcome))
    text = gate.markdown(outcome)
    if summary is not None:
        summary.write_text(text)
    if json_path is not None:
        data = json.dumps(outcome.as_dict(), indent=2, default=str)
        if str(json_path) == "-":
            click.echo(data)
        else:
            json_path.write_text(data)
    if json_path is None or str(json_path) != "-":
        click.echo(text)
    ctx.exit(0 if outcome.passed else 1)


def _parse(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


@eval_group.command("experiment")
@click.argument("dataset")
@click.option("--target", "target_json", required=True,
              help='Target as JSON, e.g. \'{"type": "model", "model": "mock/echo"}\'.')  # fmt: skip
@click.option("-e", "--evaluator", "evaluator_specs", multiple=True, required=True,
              help="Evaluator name or JSON config (repeatable).")  # fmt: skip
@click.option("--version", type=int, help="Dataset version (default: latest, pinned).")
@click.option("--name", default="", help="Experiment name.")
@click.option("--concurrency", type=click.IntRange(1, 256), help="Items at once.")
@click.option("--repeats", type=click.IntRange(1, 20), help="Runs of each item (consistency).")
@project_option
@json_option
@click.pass_context
def experiment_cmd(
    ctx: click.Context,
    dataset: str,
    target_json: str,
    evaluator_specs: tuple[str, ...],
    version: int | None,
    name: str,
    concurrency: int | None,
    repeats: int | None,
    project: str,
    as_json: bool,
) -> None:
    """Create an experiment on DATASET and run it here, with a progress bar."""
    config = {k: v for k, v in {"concurrency": concurrency, "repeats": repeats}.items() if v}
    with runtime_from(ctx) as runtime, _errors():
        try:
            row = experiments.create(
                runtime,
                _project_id(runtime, project),
                dataset=dataset,
                dataset_version=version,
                target=json.loads(target_json),
                evaluators=[_parse(e) for e in evaluator_specs],
                name=name,
                config=config,
                created_by="cli",
            )
            result = experiments.run_sync(runtime, row["id"], _progress(f"experiment {row['id']}"))
        finally:
            runtime.traces.close()
    emit({"experiment_id": row["id"], **result}, as_json, _summary_lines(row["id"], result))


@eval_group.command("resume")
@click.argument("experiment_id", type=int)
@json_option
@click.pass_context
def resume(ctx: click.Context, experiment_id: int, as_json: bool) -> None:
    """Run what an experiment has not stored yet (after a crash or a kill)."""
    with runtime_from(ctx) as runtime, _errors():
        try:
            result = experiments.run_sync(
                runtime, experiment_id, _progress(f"experiment {experiment_id}")
            )
        finally:
            runtime.traces.close()
    emit({"experiment_id": experiment_id, **result}, as_json, _summary_lines(experiment_id, result))


def _summary_lines(experiment_id: int, summary: dict[str, Any]) -> str:
    lines = [
        f"experiment {experiment_id}: {summary['results']} results, "
        f"{summary['target_errors']} target errors"
    ]
    for name, s in summary["evaluators"].items():
        ci = s["ci95"]
        interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        mean = "-" if s["mean"] is None else f"{s['mean']:.3f}"
        rate = "-" if s["pass_rate"] is None else f"{s['pass_rate']:.1%}"
        lines.append(f"  {name}: mean {mean}{interval}, pass {rate}, errors {s['errors']}")
    return "\n".join(lines)


@eval_group.command("compare")
@click.argument("baseline", type=int)
@click.argument("candidates", type=int, nargs=-1, required=True)
@json_option
@click.pass_context
def compare_cmd(
    ctx: click.Context, baseline: int, candidates: tuple[int, ...], as_json: bool
) -> None:
    """Compare experiments CANDIDATES with BASELINE item by item (regressions first)."""
    with runtime_from(ctx) as runtime, _errors():
        result = experiments.compare(runtime, baseline, *candidates)
    lines = []
    for c in result["candidates"]:
        lines.append(f"{c['name']} (#{c['experiment_id']}) vs {result['baseline']['name']}:")
        for name, e in c["evaluators"].items():
            lines.append(
                f"  {name}: +{e['wins']} -{e['losses']} ={e['ties']}, mean diff "
                f"{e['mean_diff']:+.3f} {e['ci95']}, p={e['p_value']:.3f}: {e['verdict']}"
            )
        for item in c["items"][:10]:
            lines.append(
                f"    {item['key']} {item['evaluator']}: {item['baseline']:.3f} -> "
                f"{item['candidate']:.3f}"
            )
    emit(result, as_json, "\n".join(lines))


@eval_group.command("import-promptfoo")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=".",
              show_default=True, help="Folder for eval.yaml and the dataset file.")  # fmt: skip
@click.option("--strict", is_flag=True, help="Exit 1 when anything was not converted.")
def import_promptfoo(config: Path, output: Path, strict: bool) -> None:
    """Convert a promptfoo CONFIG to eval.yaml plus a JSONL dataset; list what does not convert.

    Then: pilothouse eval run OUTPUT/eval.yaml
    """
    import yaml

    from pilothouse.evals import promptfoo

    try:
        imported = promptfoo.convert(config)
    except gate.GateError as exc:
        raise click.ClickException(str(exc)) from None
    output.mkdir(parents=True, exist_ok=True)
    data = output / imported.config["dataset"]["file"]
    data.write_text("".join(json.dumps(item) + "\n" for item in imported.items))
    (output / "eval.yaml").write_text(yaml.safe_dump(imported.config, sort_keys=False))
    c = imported.config
    click.echo(
        f"Wrote {output / 'eval.yaml'} ({len(c['prompts'])} prompts, {len(c['targets'])} targets, "
        f"{len(c['evaluators'])} evaluators) and {data} ({len(imported.items)} items)."
    )
    if imported.unsupported:
        click.echo(f"Not converted ({len(imported.unsupported)}):")
        for line in imported.unsupported:
            click.echo(f"  - {line}")
        if strict:
            raise SystemExit(1)


def _suite_file(path: Path) -> dict[str, Any]:
    import yaml

    try:
        suite = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise click.ClickException(f"{path}: {exc}") from None
    dataset = suite.get("dataset") if isinstance(suite, dict) else None
    if isinstance(dataset, dict) and dataset.get("file"):
        dataset["file"] = str((path.parent / str(dataset["file"])).resolve())
    return suite if isinstance(suite, dict) else {}


@eval_group.command("protect")
@click.argument("prompt")
@click.argument("label")
@click.option("--suite", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="eval.yaml without targets.")  # fmt: skip
@project_option
@click.pass_context
def protect_cmd(ctx: click.Context, prompt: str, label: str, suite: Path, project: str) -> None:
    """Require SUITE to pass before LABEL of PROMPT moves by promotion."""
    from pilothouse.evals import promotion

    with runtime_from(ctx) as runtime, _errors():
        promotion.protect(
            runtime, _project_id(runtime, project), prompt, label, _suite_file(suite), "cli"
        )
    click.echo(f"{prompt}@{label} is protected by {suite.name}.")


@eval_group.command("promote")
@click.argument("prompt")
@click.option("--from", "source", required=True, help="Label whose version is promoted.")
@click.option("--to", "target", required=True, help="Label to move (e.g. production).")
@click.option("--suite", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Suite to run when the label is not protected.")  # fmt: skip
@click.option("--summary", type=click.Path(dir_okay=False, path_type=Path), help="Markdown file.")
@project_option
@click.pass_context
def promote_cmd(
    ctx: click.Context,
    prompt: str,
    source: str,
    target: str,
    suite: Path | None,
    summary: Path | None,
    project: str,
) -> None:
    """Move label --to of PROMPT to the version of --from, only if the label's suite passes.

    Exit status: 0 moved, 1 the suite failed (nothing moved), 2 the suite could not run.
    """
    from pilothouse.evals import promotion
    from pilothouse.prompts.registry import Actor

    try:
        with runtime_from(ctx) as runtime:
            try:
                result = promotion.promote(
                    runtime,
                    _project_id(runtime, project),
                    prompt,
                    source,
                    target,
                    suite=_suite_file(suite) if suite else None,
                    actor=Actor("cli: pilothouse eval promote"),
                )
            finally:
                runtime.traces.close()
    except (gate.GateError, PilothouseError) as exc:
        detail = exc.detail if isinstance(exc, PilothouseError) else str(exc)
        click.echo(f"Error: {detail}", err=True)
        ctx.exit(2)
    text = gate.markdown(result.outcome)
    if summary is not None:
        summary.write_text(text)
    click.echo(text)
    if result.moved:
        click.echo(f"{prompt}: {target} -> v{result.to_version} (was v{result.from_version})")
    else:
        click.echo(f"{prompt}: {target} stays at v{result.from_version}: the suite failed")
    ctx.exit(0 if result.moved else 1)


@eval_group.command("evaluators")
@json_option
@click.pass_context
def evaluators_cmd(ctx: click.Context, as_json: bool) -> None:
    """List the registered evaluators (built-in and from plugins)."""
    from pilothouse.evals.evaluators import Evaluators
    from pilothouse.plugins import pm

    reference = Evaluators.from_plugins(pm).reference()
    lines = [f"{e['name']}\t{e['kind']}\t{e['description']}" for e in reference]
    emit(reference, as_json, "\n".join(lines))
