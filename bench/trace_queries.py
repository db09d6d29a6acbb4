"""Trace query latency with many spans stored: the list (filtered by model and time, first page)
and the aggregates endpoint, through the whole app in-process (FastAPI included).

Usage: python bench/trace_queries.py [--spans 1000000] [--database-url URL] [--runs 50]
                                    [--data-dir DIR]
Loads synthetic 4-span traces over the last 7 days with the span writer (its normal path:
spans, trace summaries and rollups), then prints p50/p95 of each query in milliseconds.
With --data-dir, a database loaded by an earlier run there is reused (topped up to --spans).
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from pilothouse.app import create_app
from pilothouse.runtime import Runtime
from pilothouse.settings import load_settings
from pilothouse.store import traces as store
from pilothouse.tracing.model import Span

KEY = "ph-bench-queries-0123456789"
MODELS = ["gpt-4o-mini", "gpt-4o", "claude-3-5-haiku", "llama-3.1-8b", "mistral-small"]
WEEK_S = 7 * 86400


def trace(now_s: float) -> list[Span]:
    trace_id = secrets.token_hex(16)
    root_id = secrets.token_hex(8)
    start = int((now_s - random.random() * WEEK_S) * 1e9)
    user = f"user-{random.randint(1, 1000)}"
    model = random.choice(MODELS)
    tags = random.sample(["beta", "vip", "mobile", "web", "eu"], 2)
    error = random.random() < 0.03
    root = Span(
        project_id=1,
        trace_id=trace_id,
        span_id=root_id,
        name="agent.run",
        start_time_ns=start,
        end_time_ns=start + random.randint(200, 3000) * 1_000_000,
        status_code="error" if error else "ok",
        user_id=user,
        session_id=f"s-{random.randint(1, 20000)}",
        tags=tags,
        input="where is my order " + secrets.token_hex(4),
        output="it ships tomorrow",
    )
    children = []
    for name, operation in (("retrieve", "retrieval"), ("chat", "chat"), ("tool", "tool")):
        child_start = start + random.randint(1, 100) * 1_000_000
        children.append(
            Span(
                project_id=1,
                trace_id=trace_id,
                span_id=secrets.token_hex(8),
                parent_span_id=root_id,
                name=name,
                start_time_ns=child_start,
                end_time_ns=child_start + random.randint(10, 900) * 1_000_000,
                operation=operation,
                request_model=model if operation == "chat" else None,
                provider="openai" if operation == "chat" else None,
                input_tokens=random.randint(100, 2000) if operation == "chat" else None,
                output_tokens=random.randint(20, 400) if operation == "chat" else None,
                cost_usd=random.random() / 1000 if operation == "chat" else None,
            )
        )
    return [root, *children]


def percentiles(samples: list[float]) -> str:
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, int(0.95 * len(samples)))]
    return f"p50 {statistics.median(samples):.1f} ms, p95 {p95:.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--database-url", default="")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--data-dir", type=Path, default=None)
    args = ap.parse_args()
    data = args.data_dir or Path(tempfile.mkdtemp(prefix="ph-bench-"))
    settings = load_settings(
        {
            "data_dir": data,
            "database_url": args.database_url,
            "admin_key": KEY,
            "admin_password": "bench-password",
            "workers_inline": False,
        },
        environ={},
    )
    runtime = Runtime(settings)
    runtime.migrate()
    runtime.bootstrap()
    with runtime.db.read() as conn:
        have = store.count_spans(conn)
    now_s = time.time()
    started = time.perf_counter()
    batch: list[Span] = []
    while have < args.spans:
        batch.extend(trace(now_s))
        if len(batch) >= 20_000:
            have += runtime.traces.commit(batch)
            batch = []
    if batch:
        have += runtime.traces.commit(batch)
    print(
        f"{have} spans stored ({time.perf_counter() - started:.0f}s to load)",
        f"on {runtime.db.dialect}",
    )

    day_ago = datetime.fromtimestamp(now_s - 86400, UTC).isoformat()
    now_iso = datetime.fromtimestamp(now_s, UTC).isoformat()
    queries: dict[str, tuple[str, dict[str, Any]]] = {
        "trace list, model + last 24 h, first page of 50": (
            "/api/traces",
            {"model": "gpt-4o", "start": day_ago, "end": now_iso, "limit": 50},
        ),
        "trace list, model + last 24 h, second page (cursor)": (
            "/api/traces",
            {"model": "gpt-4o", "start": day_ago, "end": now_iso, "limit": 50, "cursor": ""},
        ),
        "trace list, user + tag, first page of 50": (
            "/api/traces",
            {"user_id": "user-7", "tag": "vip", "limit": 50},
        ),
        "aggregates, 7 days by hour, grouped by model": (
            "/api/traces/aggregates",
            {
                "start": datetime.fromtimestamp(now_s - WEEK_S, UTC).isoformat(),
                "interval": "hour",
                "group_by": "model",
            },
        ),
        "aggregates, 24 h by minute, ungrouped": (
            "/api/traces/aggregates",
            {"start": day_ago, "interval": "minute"},
        ),
    }
    with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {KEY}"}) as client:
        for label, (path, params) in queries.items():
            if params.get("cursor") == "":  # the next page after the first
                first = client.get(path, params={**params, "cursor": None}).json()
                params["cursor"] = first["next_cursor"]
            assert client.get(path, params=params).status_code == 200
            samples = []
            for _ in range(args.runs):
                t = time.perf_counter()
                response = client.get(path, params=params)
                samples.append((time.perf_counter() - t) * 1000)
                assert response.status_code == 200, response.text
            print(f"{label}: {percentiles(samples)}")


if __name__ == "__main__":
    main()
