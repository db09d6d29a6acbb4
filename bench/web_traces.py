"""The console's trace pages with a million spans stored.

Run: python bench/web_traces.py [DATABASE_URL] [TRACES]

Stores TRACES traces of four spans each (default 250,000 = 1,000,000 spans) through the trace
writer's commit path, signs in like a browser and times the pages a user opens first: the trace
list (unfiltered, filtered by model, by status, by user; sorted by latency), the second page, one
trace, the home dashboard and the guardrail decisions (one trace in 100 has some). Prints the
median and the worst of 15 requests for each, measured around the in-process ASGI call (server
time plus the test client's small overhead).
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient

from pilothouse.app import create_app
from pilothouse.runtime import Runtime
from pilothouse.settings import load_settings
from pilothouse.store import traces as store
from pilothouse.tracing.model import Span

PASSWORD = "bench-password-1"
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-sonnet", "mock/echo")
USERS = 5_000
BATCH = 2_000  # traces per commit
GUARDED = 100  # one trace in this many has guardrail decisions on its chat span


def guardrail_decisions(i: int) -> dict[str, object]:
    """What the gateway records of a policy's decision on a call's input (no values)."""
    blocked = i % (GUARDED * 5) == 0
    check = {
        "check": "injection" if blocked else "pii",
        "action": "block" if blocked else "pseudonymize",
        "fired": True,
        "score": 0.9,
        "latency_ms": 0.2,
        "findings": [],
    }
    verdict = "block" if blocked else "modify"
    decision = {"policy": "default", "where": "input", "verdict": verdict, "checks": [check]}
    return {
        "policy": "default",
        "verdict": verdict,
        "decisions": [{**decision, "path": "messages[0].content", "latency_ms": 0.4}],
    }


def make_trace(i: int, now_ns: int) -> list[Span]:
    """A RAG-shaped trace: chain -> retrieval, chat, tool; spread over the last 23 hours."""
    trace_id = f"{i:032x}"
    start = now_ns - (i % 82_800) * 1_000_000_000 - (i * 7919) % 1_000_000_000
    root = Span(
        project_id=1,
        trace_id=trace_id,
        span_id=f"{i * 4 + 1:016x}",
        name=("answer_question", "support_flow", "summarize")[i % 3],
        start_time_ns=start,
        end_time_ns=start + (200 + i % 3000) * 1_000_000,
        status_code="error" if i % 50 == 0 else "ok",
        attributes={
            "openinference.span.kind": "CHAIN",
            "input.value": f"question number {i} about keys and projects",
            "output.value": f"answer number {i}",
            "user.id": f"user-{i % USERS}",
            "session.id": f"session-{i // 4}",
        },
    )
    children = []
    for n, (name, attributes) in enumerate(
        [
            ("retrieve_docs", {"openinference.span.kind": "RETRIEVER"}),
            (
                "chat",
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": MODELS[i % len(MODELS)],
                    "gen_ai.usage.input_tokens": 300 + i % 500,
                    "gen_ai.usage.output_tokens": 20 + i % 200,
                    "gen_ai.usage.cost": 0.0001 * (1 + i % 7),
                },
            ),
            ("search_web", {"gen_ai.operation.name": "execute_tool"}),
        ]
    ):
        offset = (10 + n * 60) * 1_000_000
        if name == "chat" and i % GUARDED == 0:
            attributes = {**attributes, "pilothouse.guardrails": guardrail_decisions(i)}
        children.append(
            Span(
                project_id=1,
                trace_id=trace_id,
                span_id=f"{i * 4 + 2 + n:016x}",
                parent_span_id=root.span_id,
                name=name,
                start_time_ns=start + offset,
                end_time_ns=start + offset + 50_000_000,
                status_code="ok",
                attributes=attributes,
            )
        )
    return [root, *children]


def seed(runtime: Runtime, traces: int) -> float:
    now_ns = time.time_ns()
    started = time.perf_counter()
    for first in range(0, traces, BATCH):
        spans = [s for i in range(first, min(first + BATCH, traces)) for s in make_trace(i, now_ns)]
        runtime.traces.commit(spans)
        if first and first % 50_000 == 0:
            print(f"  {first:,} traces stored", flush=True)
    return time.perf_counter() - started


def timed(client: TestClient, url: str, runs: int = 15) -> tuple[float, float]:
    client.get(url)  # warm caches and the template
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return statistics.median(times), max(times)


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else ""
    traces = int(sys.argv[2]) if len(sys.argv) > 2 else 250_000
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            {
                "data_dir": Path(tmp),
                "database_url": url or f"sqlite:///{tmp}/bench.db",
                "admin_password": PASSWORD,
                "workers_inline": False,
            },
            environ={},
        )
        runtime = Runtime(settings)
        runtime.migrate()
        runtime.bootstrap()
        print(f"storing {traces:,} traces ({traces * 4:,} spans) on {runtime.db.dialect}")
        took = seed(runtime, traces)
        with runtime.db.read() as conn:
            spans = store.count_spans(conn, 1)
        print(f"stored {spans:,} spans in {took:.0f} s")
        with TestClient(create_app(runtime)) as client:
            page = client.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token
            client.post(
                "/login",
                data={"email": "admin@localhost", "password": PASSWORD, "csrf_token": token[1]},
            )
            first = client.get("/projects/1/traces").text
            next_url = re.search(r'href="([^"]+)" rel="next"', first)
            assert next_url
            one = re.search(r'href="(/projects/1/traces/[0-9a-f]{32})"', first)
            assert one
            pages = {
                "trace list, first page (last 24h, newest first)": "/projects/1/traces",
                "trace list, second page": next_url[1].replace("&amp;", "&"),
                "trace list, model = gpt-4o": "/projects/1/traces?model=gpt-4o",
                "trace list, status = error": "/projects/1/traces?status=error",
                "trace list, one user": "/projects/1/traces?user_id=user-42&range=all",
                "trace list, sorted by latency": "/projects/1/traces?sort=latency",
                "trace list, text search in input/output": "/projects/1/traces?q=number+4242",
                "trace detail (4 spans)": one[1],
                "home dashboard, 24h": "/projects/1?range=24h",
                "home dashboard, 30d": "/projects/1?range=30d",
                "guardrail decisions, 24h": "/projects/1/guardrails/decisions",
                "guardrail decisions, verdict = block": (
                    "/projects/1/guardrails/decisions?verdict=block"
                ),
                "guardrail decisions, check = toxicity (no match)": (
                    "/projects/1/guardrails/decisions?check=toxicity"
                ),
            }
            print(f"| Page ({spans:,} spans, {runtime.db.dialect}) | median | worst of 15 |")
            print("| --- | --- | --- |")
            for name, path in pages.items():
                median, worst = timed(client, path)
                print(f"| {name} | {median:.0f} ms | {worst:.0f} ms |", flush=True)
        runtime.db.close()


if __name__ == "__main__":
    main()
