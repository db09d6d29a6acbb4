"""HTTP endpoint targets and embedding similarity through the gateway's /v1/embeddings."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest

from pilothouse.evals import experiments
from pilothouse.evals.api import datasets_of
from pilothouse.runtime import Runtime
from pilothouse.store import evals as store
from tests.conftest import LiveServer


async def answer_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app under test: answers {"output": <input upper-cased>}, or 503 for "down"."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    value = json.loads(body)["input"]
    status = 503 if value == "down" else 200
    payload = json.dumps({"output": str(value).upper()}).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def test_http_target_and_embedding_similarity(eval_runtime: Runtime):
    runtime = eval_runtime
    items = [
        {"input": "paris", "expected": "PARIS"},
        {"input": "rome", "expected": "Lisbon"},
        {"input": "down", "expected": "x"},
    ]
    datasets_of(runtime).create(1, "http", items=items)
    with LiveServer(answer_app) as server:
        row = experiments.create(
            runtime,
            1,
            dataset="http",
            target={"type": "http", "url": server.url + "/answer"},
            evaluators=["equals", {"type": "embedding-similarity", "model": "mock/embed"}],
            config={"retries": 1, "backoff": 0.01},
        )
        summary = experiments.run_sync(runtime, row["id"])
    assert summary["target_errors"] == 1
    with runtime.db.read() as conn:
        results = store.results_of(conn, row["id"])
    outputs = [r["output"] for r in results]
    assert outputs == ["PARIS", "ROME", None]
    assert results[2]["error"].startswith("UpstreamError: target answered 503")
    same, different = (r["scores"][1] for r in results[:2])
    assert same["value"] == pytest.approx(1.0) and same["passed"] is True
    assert different["value"] < 0.99 and "latency_ms" in different


@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is not None,
    reason="sentence-transformers is installed: the missing-extra message cannot be seen",
)
async def test_local_embedding_backend_without_the_extra_is_a_clear_item_error():
    from pilothouse.evals import Evaluators, Sample
    from pilothouse.plugins import pm

    spec = Evaluators.from_plugins(pm).spec(
        {"type": "embedding-similarity", "backend": "sentence-transformers"}
    )
    score = await spec.run(Sample("q", "a", "a"))
    assert score is not None and score.value is None
    assert "pip install pilothouse[ml]" in (score.error or "")
