"""Experiments: run a target over a pinned dataset version, score every answer, aggregate.

A run is resumable: results are stored one by one, unique per (experiment, item, repeat), and
a run that starts again (after a crash, a kill or a failed job) skips what is stored. Each
(item, repeat) gets its own trace: a root span ``eval <experiment>`` with the item's input and
output, and, for prompt and model targets, the gateway's span below it. Scores are written to
the experiment result and onto that trace (``scores`` table, source ``eval``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread
from sqlalchemy.engine import RowMapping

from pilothouse.errors import BadRequest, PilothouseError
from pilothouse.evals import stats
from pilothouse.evals.evaluators import Evaluators, EvaluatorSpec, Sample, Score
from pilothouse.evals.models import RETRYABLE, ModelClient
from pilothouse.evals.targets import Output, Target, check_target
from pilothouse.store import evals as store
from pilothouse.store import traces as trace_store
from pilothouse.store.types import utcnow
from pilothouse.tracing.model import Span

if TYPE_CHECKING:
    from pilothouse.runtime import Runtime

log = logging.getLogger(__name__)

T = TypeVar("T")

#: progress(done, total) after each stored result
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RunConfig:
    concurrency: int = 8
    retries: int = 2
    repeats: int = 1
    backoff: float = 0.5

    @classmethod
    def of(cls, raw: Any, defaults: RunConfig) -> RunConfig:
        raw = raw or {}
        if not isinstance(raw, dict):
            raise BadRequest("config: expected an object", param="config")
        unknown = set(raw) - {"concurrency", "retries", "repeats", "backoff"}
        if unknown:
            raise BadRequest(f"config.{sorted(unknown)[0]}: unknown field", param="config")
        out = cls(
            concurrency=int(raw.get("concurrency", defaults.concurrency)),
            retries=int(raw.get("retries", defaults.retries)),
            repeats=int(raw.get("repeats", defaults.repeats)),
            backoff=float(raw.get("backoff", defaults.backoff)),
        )
        if not (1 <= out.concurrency <= 256 and 0 <= out.retries <= 10 and 1 <= out.repeats <= 20):
            raise BadRequest(
                "config: concurrency 1..256, retries 0..10, repeats 1..20", param="config"
            )
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "retries": self.retries,
            "repeats": self.repeats,
            "backoff": self.backoff,
        }


def evaluators_of(runtime: Runtime) -> Evaluators:
    found = runtime.state.get("evals.evaluators")
    if found is None:
        found = runtime.state["evals.evaluators"] = Evaluators.from_plugins(runtime.plugins)
    assert isinstance(found, Evaluators)
    return found


def create(
    runtime: Runtime,
    project_id: int,
    *,
    dataset: str,
    target: Any,
    evaluators: Any,
    name: str = "",
    dataset_version: int | None = None,
    config: Any = None,
    created_by: str = "",
    allow_code: bool = True,
) -> RowMapping:
    """A pending experiment, its config checked and its dataset version pinned.

    ``allow_code=False`` (the API) refuses python targets and evaluators: they import and run
    code named in the request, which only the operator's own config may do.
    """
    kind = check_target(target)["type"]
    specs = evaluators_of(runtime).specs(evaluators)
    if not allow_code and (kind == "python" or any(s.evaluator.kind == "custom" for s in specs)):
        raise BadRequest(
            "python targets and evaluators run local code: use the CLI or eval.yaml",
            param="target" if kind == "python" else "evaluators",
        )
    settings = runtime.settings
    defaults = RunConfig(settings.evals_concurrency, settings.evals_retries)
    run_config = RunConfig.of(config, defaults)
    with runtime.db.write() as conn:
        row = store.get_dataset(conn, project_id, dataset)
        version = dataset_version or row["latest_version"]
        store.get_version(conn, row["id"], version)
        return store.create_experiment(
            conn,
            project_id=project_id,
            dataset_id=row["id"],
            dataset_version=version,
            name=name or f"{dataset}@{version}",
            target=dict(target),
            evaluators=list(evaluators),
            config=run_config.as_dict(),
            created_by=created_by,
            summary={"names": [s.name for s in specs]},
        )


def _root_span(
    experiment: RowMapping, item: RowMapping, repeat: int, trace_id: str, span_id: str
) -> Span:
    return Span(
        project_id=experiment["project_id"],
        trace_id=trace_id,
        span_id=span_id,
        name=f"eval {experiment['name']}",
        start_time_ns=time.time_ns(),
        end_time_ns=0,
        operation="chain",
        input=item["input"],
        tags=["eval"],
        attributes={
            "pilothouse.experiment_id": experiment["id"],
            "pilothouse.dataset_item": item["key"],
            "pilothouse.repeat": repeat,
        },
        service_name="pilothouse-evals",
    )


class Run:
    """One pass of an experiment over the items it has not stored yet."""

    def __init__(self, runtime: Runtime, experiment_id: int, progress: Progress | None) -> None:
        self.runtime = runtime
        self.progress = progress
        with runtime.db.read() as conn:
            self.experiment = store.get_experiment(conn, experiment_id)
            self.items = store.live_items(
                conn, self.experiment["dataset_id"], self.experiment["dataset_version"]
            )
            self.done = store.done_keys(conn, experiment_id)
        e = self.experiment
        self.specs: list[EvaluatorSpec] = evaluators_of(runtime).specs(e["evaluators"])
        self.config = RunConfig.of(e["config"], RunConfig())
        self.models = ModelClient(runtime, e["project_id"])
        self.target = Target(e["target"], self.models)
        self.total = len(self.items) * self.config.repeats
        self.finished = len(self.done)
        self._lock = asyncio.Lock()

    async def answer(self, item: RowMapping, traceparent: str) -> Output:
        attempt = 0
        while True:
            try:
                return await self.target.answer(item["input"], traceparent)
            except RETRYABLE as exc:
                if attempt >= self.config.retries:
                    raise
                attempt += 1
                delay = getattr(exc, "retry_after", None) or self.config.backoff * 2 ** (
                    attempt - 1
                )
                await asyncio.sleep(min(delay, 30.0))

    async def one(self, item: RowMapping, repeat: int) -> None:
        trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
        root = _root_span(self.experiment, item, repeat, trace_id, span_id)
        output: Output | None = None
        error: str | None = None
        try:
            output = await self.answer(item, f"00-{trace_id}-{span_id}-01")
        except PilothouseError as exc:
            error = f"{type(exc).__name__}: {exc.detail}"
        except Exception as exc:  # noqa: BLE001 - a failing target is a per-item error
            error = f"{type(exc).__name__}: {exc}"
        scores: list[dict[str, Any]] = []
        if output is not None:
            sample = Sample(
                input=item["input"],
                output=output.output,
                expected=item["expected"],
                context=item["context"],
                metadata=item["metadata"],
                latency_ms=output.latency_ms,
                cost_usd=output.cost_usd,
                models=self.models,
            )
            for spec in self.specs:
                score = await spec.run(sample)
                if score is not None:
                    scores.append(_score_doc(spec.name, score))
        root.end_time_ns = time.time_ns()
        root.output = output.output if output is not None else None
        root.status_code = "error" if error else "ok"
        root.status_message = error
        self.runtime.traces.submit([root])
        await anyio.to_thread.run_sync(self._store, item, repeat, output, error, trace_id, scores)
        async with self._lock:
            self.finished += 1
            if self.progress is not None:
                self.progress(self.finished, self.total)

    def _store(
        self,
        item: RowMapping,
        repeat: int,
        output: Output | None,
        error: str | None,
        trace_id: str,
        scores: list[dict[str, Any]],
    ) -> None:
        e = self.experiment
        now = utcnow()
        with self.runtime.db.write() as conn:
            stored = store.insert_result(
                conn,
                experiment_id=e["id"],
                item_id=item["id"],
                repeat=repeat,
                output=output.output if output is not None else None,
                error=error,
                latency_ms=output.latency_ms if output is not None else None,
                cost_usd=output.cost_usd if output is not None else None,
                trace_id=trace_id,
                scores=scores,
                created_at=now,
            )
            if stored and scores:
                conn.execute(
                    trace_store.scores.insert(), [_trace_score(e, trace_id, s, now) for s in scores]
                )

    async def run(self) -> dict[str, Any]:
        pending = [
            (item, repeat)
            for repeat in range(self.config.repeats)
            for item in self.items
            if (item["id"], repeat) not in self.done
        ]
        with self.runtime.db.write() as conn:
            store.update_experiment(
                conn,
                self.experiment["id"],
                status="running",
                error=None,
                started_at=self.experiment["started_at"] or utcnow(),
            )
        if self.progress is not None:
            self.progress(self.finished, self.total)
        queue = iter(pending)

        async def worker() -> None:
            for item, repeat in queue:
                await self.one(item, repeat)

        try:
            workers = min(self.config.concurrency, max(1, len(pending)))
            await asyncio.gather(*(worker() for _ in range(workers)))
        except BaseException as exc:
            with self.runtime.db.write() as conn:
                store.update_experiment(
                    conn, self.experiment["id"], status="failed", error=repr(exc)[:2000]
                )
            raise
        finally:
            await self.target.aclose()
            await self.models.aclose()
        return self.finish()

    def finish(self) -> dict[str, Any]:
        names = [s.name for s in self.specs]
        with self.runtime.db.write() as conn:
            results = store.results_of(conn, self.experiment["id"])
            summary = {"names": names, **stats.summarize(results, names)}
            store.update_experiment(
                conn,
                self.experiment["id"],
                status="completed",
                summary=summary,
                finished_at=utcnow(),
            )
        return summary


def _score_doc(name: str, score: Score) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": name, "value": score.value, "passed": score.passed}
    if score.reason:
        doc["reason"] = score.reason[:2000]
    if score.error:
        doc["error"] = score.error[:2000]
    if score.cost_usd is not None:
        doc["cost_usd"] = score.cost_usd
    if score.latency_ms is not None:
        doc["latency_ms"] = round(score.latency_ms, 3)
    if score.metadata:
        doc["metadata"] = score.metadata
    return doc


def _trace_score(e: RowMapping, trace_id: str, s: dict[str, Any], now: Any) -> dict[str, Any]:
    return {
        "project_id": e["project_id"],
        "trace_id": trace_id,
        "span_id": None,
        "name": s["name"],
        "data_type": "numeric" if s["value"] is not None else "categorical",
        "value": s["value"],
        "string_value": None if s["value"] is not None else "error",
        "source": "eval",
        "comment": s.get("error") or s.get("reason"),
        "author": f"experiment:{e['id']}",
        "metadata": {
            "experiment_id": e["id"],
            "passed": s["passed"],
            **({"cost_usd": s["cost_usd"]} if "cost_usd" in s else {}),
            **({"latency_ms": s["latency_ms"]} if "latency_ms" in s else {}),
        },
        "created_at": now,
    }


async def run(
    runtime: Runtime, experiment_id: int, progress: Progress | None = None
) -> dict[str, Any]:
    """Run (or resume) an experiment in this event loop; returns its summary."""
    return await Run(runtime, experiment_id, progress).run()


def with_gateway(runtime: Runtime, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work()`` in a new event loop from synchronous code (CLI, jobs), with a gateway
    made for that loop (its connections belong to it) unless the runtime has one."""

    async def main() -> T:
        from pilothouse.gateway.plugin import gateway_of

        created = "gateway" not in runtime.state
        gateway = gateway_of(runtime)
        if created:
            await gateway.start()
        try:
            return await work()
        finally:
            if created:
                await gateway.stop()
                runtime.state.pop("gateway", None)

    return asyncio.run(main())


def run_sync(
    runtime: Runtime, experiment_id: int, progress: Progress | None = None
) -> dict[str, Any]:
    """Run (or resume) an experiment from synchronous code (CLI, jobs), gateway included."""
    return with_gateway(runtime, lambda: run(runtime, experiment_id, progress))


def keys_of(runtime: Runtime, *experiment_ids: int) -> dict[int, str]:
    """item id -> item key, for the items of these experiments."""
    with runtime.db.read() as conn:
        ids: set[int] = set()
        for experiment_id in experiment_ids:
            ids.update(r["item_id"] for r in store.results_of(conn, experiment_id))
        return {i: row["key"] for i, row in store.items_by_id(conn, sorted(ids)).items()}


def compare(runtime: Runtime, baseline_id: int, *candidate_ids: int) -> dict[str, Any]:
    """Each candidate against the baseline, item by item (same dataset required)."""
    with runtime.db.read() as conn:
        base = store.get_experiment(conn, baseline_id)
        others = [store.get_experiment(conn, i) for i in candidate_ids]
        rows = {i: store.results_of(conn, i) for i in (baseline_id, *candidate_ids)}
    for other in others:
        if other["dataset_id"] != base["dataset_id"]:
            raise BadRequest(
                f"experiment {other['id']} ran on another dataset than {baseline_id}",
                param="experiments",
            )
    keys = keys_of(runtime, baseline_id, *candidate_ids)
    base_items = stats.per_item(rows[baseline_id], keys)
    names = list((base["summary"] or {}).get("names") or [])
    out = []
    for other in others:
        shared = [n for n in names if n in ((other["summary"] or {}).get("names") or [])]
        result = stats.compare(base_items, stats.per_item(rows[other["id"]], keys), shared)
        out.append({"experiment_id": other["id"], "name": other["name"], **result})
    return {"baseline": {"experiment_id": baseline_id, "name": base["name"]}, "candidates": out}
