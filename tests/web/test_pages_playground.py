"""The prompt playground: the form, a run without JavaScript, the streamed run
(web/pages/playground.py)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.testclient import TestClient

from pilothouse.prompts.api import registry_of
from pilothouse.prompts.registry import Actor
from pilothouse.runtime import Runtime
from tests.web.conftest import csrf

NAME = "support/answer"
URL = f"/projects/1/prompts/{NAME}/playground"
CHAT = "support/chat"


def seed(runtime: Runtime) -> None:
    registry = registry_of(runtime)
    actor = Actor("seed@example.com")
    registry.save(1, NAME, actor=actor, prompt_type="text", template="Answer {{question}} briefly.")
    registry.save(
        1,
        NAME,
        actor=actor,
        template="Answer {{question}} politely.",
        config={"model": "mock/lorem"},
    )
    registry.save(
        1,
        CHAT,
        actor=actor,
        prompt_type="chat",
        template=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Question: {{question}}"},
        ],
    )


def events(body: str) -> list[tuple[str, object]]:
    out = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        out.append((lines["event"], orjson.loads(lines["data"])))
    return out


def test_form_lists_the_versions_variables_and_models(admin: TestClient, runtime: Runtime) -> None:
    seed(runtime)
    page = admin.get(URL, params={"version": "1"})
    assert page.status_code == 200
    assert 'name="var.question"' in page.text
    assert '<option value="mock/echo" selected>' in page.text
    assert "mock/embed" not in page.text  # embeddings models cannot answer a chat
    latest = admin.get(URL)
    assert "v2" in latest.text and "the prompt's model (mock/lorem)" in latest.text
    assert admin.get(URL, params={"version": "9"}).status_code == 404


def test_run_without_javascript_renders_and_answers(admin: TestClient, runtime: Runtime) -> None:
    seed(runtime)
    url = f"/projects/1/prompts/{CHAT}/playground"
    token = csrf(admin.get(url).text)
    question = "<b>What is 2+2?</b>"
    page = admin.post(
        url,
        data={"csrf_token": token, "version": "1", "var.question": question, "model": "mock/echo"},
    )
    assert page.status_code == 200
    assert "You are terse." in page.text
    # The echo model repeats the rendered user message; both are escaped.
    assert page.text.count("Question: &lt;b&gt;What is 2+2?&lt;/b&gt;") == 2
    assert "<b>What is 2+2?</b>" not in page.text
    assert "mock/echo" in page.text


def stream(client: TestClient, version: str, model: str, question: str = "why") -> Any:
    token = csrf(client.get(URL).text)
    data = {"csrf_token": token, "version": version, "var.question": question, "model": model}
    return client.post(URL + "/stream", data=data)


def test_streamed_run_sends_rendered_deltas_and_done(admin: TestClient, runtime: Runtime) -> None:
    seed(runtime)
    response = stream(admin, "1", "mock/echo")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    got = events(response.text)
    assert got[0] == ("rendered", [{"role": "user", "content": "Answer why briefly."}])
    deltas = [data for kind, data in got if kind == "delta"]
    assert len(deltas) > 1 and "".join(map(str, deltas)) == "Answer why briefly."
    kind, done = got[-1]
    assert kind == "done" and isinstance(done, dict) and done["usage"]["completion_tokens"] > 0


def test_the_prompts_model_answers_and_gateway_errors_end_the_stream(
    admin: TestClient, runtime: Runtime
) -> None:
    seed(runtime)
    # "" lets the prompt's own model (mock/lorem) answer.
    lorem = events(stream(admin, "2", "").text)
    assert lorem[-1][0] == "done" and "lorem" in "".join(str(d) for k, d in lorem if k == "delta")
    registry_of(runtime).save(
        1, NAME, actor=Actor("seed@example.com"), template="Hi", config={"model": "gone/model"}
    )
    failed = events(stream(admin, "3", "").text)
    assert failed[-1][0] == "error" and "gone/model" in str(failed[-1][1])
    assert stream(admin, "1", "nope").status_code == 400


def test_csrf_and_viewer_are_refused(viewer: TestClient, runtime: Runtime) -> None:
    seed(runtime)
    page = viewer.get(URL)
    assert page.status_code == 200
    assert ">Run</button>" not in page.text
    token = csrf(page.text)
    data = {"csrf_token": token, "version": "1", "var.question": "hi", "model": "mock/echo"}
    assert viewer.post(URL + "/stream", data=data).status_code == 403
    assert viewer.post(URL, data=data).status_code == 403
    del data["csrf_token"]
    assert viewer.post(URL + "/stream", data=data).status_code == 403
