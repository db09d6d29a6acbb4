"""``pilothouse demo``: a project full of realistic sample data, so the console has something
to show on first start.

It seeds a project named ``demo``: a day of traces of a small RAG support bot (sent through
the OTLP decoder and the trace writer, exactly as ingestion stores them), prompts with several
versions and labels, and a dataset with two experiments (their targets are the functions at
the end of this module).
"""

from __future__ import annotations

import random
import secrets
import time
from typing import TYPE_CHECKING, Any

import click
import orjson

from pilothouse.errors import NotFound
from pilothouse.store import identity as identity_store

if TYPE_CHECKING:
    from pilothouse.runtime import Runtime

PROJECT = "demo"
QUESTIONS = [
    ("How do I rotate an API key?", "Create a new key, deploy it, then revoke the old one."),
    ("Can a viewer edit prompts?", "No: viewers can read everything but change nothing."),
    ("Where do I see costs per model?", "On the project home, under top models by cost."),
    ("How long are traces kept?", "As long as the project's retention setting says."),
    ("Does the gateway retry on 429?", "Yes, with backoff, then it falls back to the next model."),
    ("Can I self-host on PostgreSQL?", "Yes: set PILOTHOUSE_DATABASE_URL to a postgresql URL."),
    ("How do I roll back a prompt?", "Open the prompt and roll its label back."),
    ("What is a session?", "All traces that share a session id: one conversation."),
]
MODELS = [("gpt-4o-mini", "openai", 0.15, 0.6), ("claude-haiku", "anthropic", 0.8, 4.0)]
USERS = ["ana", "bo", "chen", "dara", "eli", "fay", "gus", "hana"]
CAPITALS = {
    "France": "Paris",
    "Japan": "Tokyo",
    "Peru": "Lima",
    "Kenya": "Nairobi",
    "Canada": "Ottawa",
    "Australia": "Canberra",
    "Brazil": "Brasília",
    "Egypt": "Cairo",
}


def _attrs(values: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, value in values.items():
        if isinstance(value, bool):
            wrapped: dict[str, Any] = {"boolValue": value}
        elif isinstance(value, int):
            wrapped = {"intValue": str(value)}
        elif isinstance(value, float):
            wrapped = {"doubleValue": value}
        elif isinstance(value, list):
            wrapped = {"arrayValue": {"values": [{"stringValue": str(v)} for v in value]}}
        else:
            wrapped = {"stringValue": str(value)}
        out.append({"key": key, "value": wrapped})
    return out


def _span(
    trace_id: str,
    name: str,
    start_ns: int,
    ms: float,
    attrs: dict[str, Any],
    parent: str | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    span = {
        "traceId": trace_id,
        "spanId": secrets.token_hex(8),
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(start_ns + int(ms * 1e6)),
        "attributes": _attrs(attrs),
        "status": {"code": 2, "message": error} if error else {"code": 1},
    }
    if parent:
        span["parentSpanId"] = parent
    return span


def support_trace(rng: random.Random, start_ns: int, turn: int) -> list[dict[str, Any]]:
    """One request of the support bot: retrieve, answer with a model, sometimes a tool call."""
    trace_id = secrets.token_hex(16)
    question, answer = rng.choice(QUESTIONS)
    model, provider, price_in, price_out = rng.choice(MODELS)
    failed = rng.random() < 0.04
    user = rng.choice(USERS)
    tokens_in, tokens_out = rng.randint(250, 900), rng.randint(20, 160)
    llm_ms = rng.lognormvariate(6.6, 0.45)
    total = 40 + 120 + llm_ms + 30
    root = _span(
        trace_id,
        "support_bot",
        start_ns,
        total,
        {
            "openinference.span.kind": "CHAIN",
            "input.value": question,
            "output.value": "" if failed else answer,
            "user.id": user,
            "session.id": f"{user}-{turn // 3}",
            "tag.tags": ["support", "rag"],
            "deployment.environment.name": "production",
        },
        error="the model provider returned 503" if failed else None,
    )
    retrieve = _span(
        trace_id,
        "retrieve_docs",
        start_ns + 40_000_000,
        120,
        {
            "openinference.span.kind": "RETRIEVER",
            "input.value": question,
            "retrieval.documents.0.document.id": f"doc-{rng.randint(1, 40)}",
            "retrieval.documents.0.document.content": answer,
            "retrieval.documents.0.document.score": round(rng.uniform(0.6, 0.95), 3),
        },
        parent=root["spanId"],
    )
    chat = _span(
        trace_id,
        f"chat {model}",
        start_ns + 160_000_000,
        llm_ms,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": tokens_in,
            "gen_ai.usage.output_tokens": 0 if failed else tokens_out,
            "gen_ai.usage.cost": round((tokens_in * price_in + tokens_out * price_out) / 1e6, 8),
            # A streamed answer: the first token after about a third of the call.
            "pilothouse.ttft_ms": round(llm_ms * 0.35, 1),
            "pilothouse.prompt.name": "support/answer",
            "pilothouse.prompt.version": 3,
            "gen_ai.input.messages": orjson.dumps(
                [
                    {"role": "system", "content": "Answer from the documentation only."},
                    {"role": "user", "content": question},
                ]
            ).decode(),
            "gen_ai.output.messages": orjson.dumps(
                [] if failed else [{"role": "assistant", "content": answer}]
            ).decode(),
        },
        parent=root["spanId"],
        error="503 Service Unavailable" if failed else None,
    )
    spans = [root, retrieve, chat]
    if rng.random() < 0.3:
        spans.append(
            _span(
                trace_id,
                "lookup_account",
                start_ns + int((160 + llm_ms) * 1e6),
                30,
                {"gen_ai.operation.name": "execute_tool", "input.value": f'{{"user": "{user}"}}'},
                parent=root["spanId"],
            )
        )
    return spans


def seed_traces(runtime: Runtime, project_id: int, count: int, seed: int = 7) -> int:
    """``count`` support-bot traces spread over the last 24 hours; returns spans stored."""
    from pilothouse.tracing import otlp

    rng = random.Random(seed)
    now = time.time_ns()
    spans: list[dict[str, Any]] = []
    for i in range(count):
        start = now - int(rng.uniform(60, 86_400) * 1e9)
        spans.extend(support_trace(rng, start, i))
    body = orjson.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": _attrs({"service.name": "support-bot"})},
                    "scopeSpans": [{"spans": spans}],
                }
            ]
        }
    )
    decoded = otlp.decode(body, otlp.JSON, project_id)
    return runtime.traces.commit(decoded.spans)


def seed_prompts(runtime: Runtime, project_id: int) -> None:
    from pilothouse.prompts.api import registry_of
    from pilothouse.prompts.registry import Actor

    registry = registry_of(runtime)
    actor = Actor("demo@pilothouse")
    versions = [
        ("Answer the question.", {"temperature": 0.7}, "first draft", []),
        (
            "Answer the question using the documentation.\nBe brief.",
            {"temperature": 0.3},
            "ground answers in the docs",
            ["staging"],
        ),
        (
            "Answer from the documentation only.\nBe brief and cite the page.\n"
            "If the docs do not say, answer that you do not know.",
            {"temperature": 0.0, "max_tokens": 300},
            "no guessing",
            ["production", "staging"],
        ),
    ]
    for text, config, message, labels in versions:
        registry.save(
            project_id,
            "support/answer",
            actor=actor,
            prompt_type="chat",
            template=[
                {"role": "system", "content": text},
                {"role": "user", "content": "{{question}}"},
            ],
            config={"model": "gpt-4o-mini", **config},
            message=message,
            labels=labels,
            description="The support bot's answer prompt",
        )
    registry.save(
        project_id,
        "support/summarize",
        actor=actor,
        prompt_type="text",
        template="Summarize this conversation in one sentence:\n{{conversation}}",
        message="first version",
        labels=["production"],
    )


def seed_experiments(runtime: Runtime, project_id: int) -> None:
    from pilothouse.evals import experiments
    from pilothouse.evals.api import datasets_of

    items = [
        {"input": {"country": c}, "expected": city, "key": c.lower()}
        for c, city in CAPITALS.items()
    ]
    datasets_of(runtime).create(
        project_id, "capitals", items=items, description="Capital cities", author="demo"
    )
    for name, function in (("careful model", "careful"), ("hasty model", "hasty")):
        row = experiments.create(
            runtime,
            project_id,
            dataset="capitals",
            name=name,
            target={"type": "python", "function": f"pilothouse.web.demo:{function}"},
            evaluators=["equals"],
            created_by="demo",
        )
        experiments.run_sync(runtime, row["id"])


def seed_review(runtime: Runtime, project_id: int, items: int = 12) -> None:
    """An annotation queue of the newest traces, with a two-part rubric, to review."""
    from pilothouse.store import annotations as review_store
    from pilothouse.store import traces as trace_store

    with runtime.db.write() as conn:
        newest = trace_store.list_traces(conn, project_id, trace_store.TraceFilter(), limit=items)
        queue = review_store.create_queue(
            conn,
            project_id=project_id,
            name="support answers",
            description="Is the bot helpful, and does it stick to the docs it retrieved?",
            score_configs=[
                {"name": "helpful", "type": "numeric", "min": 1, "max": 5,
                 "categories": [], "description": "1 useless, 5 solved it"},
                {"name": "grounded", "type": "boolean", "min": None, "max": None,
                 "categories": [], "description": "only says what the documents say"},
            ],
            reviewers_per_item=1,
        )  # fmt: skip
        review_store.add_items(
            conn,
            queue["id"],
            [{"trace_id": t["trace_id"], "dataset_item_id": None} for t in newest],
        )


def careful(value: Any) -> str:
    """Demo experiment target: always right."""
    return CAPITALS[value["country"]]


def hasty(value: Any) -> str:
    """Demo experiment target: picks the biggest city, which is not always the capital."""
    wrong = {"Canada": "Toronto", "Australia": "Sydney", "Brazil": "São Paulo"}
    return wrong.get(value["country"], CAPITALS[value["country"]])


@click.command()
@click.option("--traces", default=400, show_default=True, help="How many traces to create.")
@click.pass_context
def demo(ctx: click.Context, traces: int) -> None:
    """Seed a project named "demo" with sample traces, prompts, a dataset and experiments."""
    from pilothouse.cli.context import runtime_from

    with runtime_from(ctx) as runtime:
        first = runtime.bootstrap()
        with runtime.db.write() as conn:
            org = identity_store.org_by_name(conn, "default")
            if org is None:
                raise click.ClickException("no default organization; run `pilothouse serve` once")
            try:
                identity_store.project_by_name(conn, PROJECT, org["id"])
            except NotFound:
                project = identity_store.create_project(conn, org["id"], PROJECT)
            else:
                raise click.ClickException(f"a project named {PROJECT!r} already exists")
            admin = identity_store.user_by_email(conn, runtime.settings.admin_email)
            if admin is not None:
                identity_store.set_membership(conn, project["id"], admin["id"], "owner")
        try:
            stored = seed_traces(runtime, project["id"], traces)
            seed_prompts(runtime, project["id"])
            seed_experiments(runtime, project["id"])
            runtime.traces.flush()
            seed_review(runtime, project["id"])
        finally:
            runtime.traces.close()
    click.echo(f"Seeded project {PROJECT!r} (id {project['id']}): {stored} spans, 2 prompts,")
    click.echo("a dataset, two experiments and an annotation queue.")
    if first is not None and first.password:
        click.echo(f"Sign in as {first.email} with password {first.password} (shown once).")
    settings = runtime.settings
    click.echo(f"Run `pilothouse serve` and open http://{settings.host}:{settings.port}/")
