"""The prompt registry API: versions, labels, history, rollback, diff, render, errors."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from pilothouse.runtime import Runtime
from pilothouse.store import prompts as store

TEXT = "Hello {{customer}}, about order {{order.id}}:\n{{#items}}- {{name}}\n{{/items}}Thanks."


def create(client: TestClient, name: str = "support/refund-reply", **extra: Any) -> Any:
    body = {"name": name, "type": "text", "template": TEXT, "message": "first"} | extra
    response = client.post("/api/prompts", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def save(client: TestClient, name: str, template: Any, **extra: Any) -> Any:
    return client.post(f"/api/prompts/{name}/versions", json={"template": template} | extra)


def test_create_get_and_list(client: TestClient):
    created = create(client, config={"model": "gpt-4o-mini", "temperature": 0.2}, tags=["support"])
    assert created["name"] == "support/refund-reply"
    assert created["labels"] == {"latest": 1}
    version = created["version"]
    assert version["version"] == 1
    assert version["author"] == "key:admin"
    assert version["message"] == "first"
    assert version["config"] == {"model": "gpt-4o-mini", "temperature": 0.2}
    assert version["variables"] == ["customer", "order", "items"]
    assert len(version["content_hash"]) == 64

    got = client.get("/api/prompts/support/refund-reply").json()
    assert got["version"]["template"] == TEXT
    create(client, "support/other", description="Other things")
    create(client, "sales/pitch", tags=["sales"])

    listed = client.get("/api/prompts", params={"limit": 2}).json()
    assert [p["name"] for p in listed["data"]] == ["sales/pitch", "support/other"]
    rest = client.get("/api/prompts", params={"limit": 2, "cursor": listed["next_cursor"]}).json()
    assert [p["name"] for p in rest["data"]] == ["support/refund-reply"]
    assert rest["next_cursor"] is None
    assert [p["name"] for p in client.get("/api/prompts?q=OTHER").json()["data"]] == [
        "support/other"
    ]
    assert [p["name"] for p in client.get("/api/prompts?tag=sales").json()["data"]] == [
        "sales/pitch"
    ]
    assert (
        client.post(
            "/api/prompts", json={"name": "sales/pitch", "type": "text", "template": "x"}
        ).status_code
        == 409
    )


def test_versions_are_immutable_and_deduplicated(client: TestClient, runtime: Runtime):
    create(client)
    same = save(client, "support/refund-reply", TEXT)
    assert same.status_code == 200
    assert same.json()["created"] is False
    assert same.json()["version"]["version"] == 1

    changed = save(client, "support/refund-reply", TEXT + "!", message="louder")
    assert changed.status_code == 201
    assert changed.json()["version"]["version"] == 2
    assert changed.json()["labels"]["latest"] == 2

    # No route edits a version: PATCH takes only prompt metadata, PUT/DELETE on a version 405.
    edit = client.patch("/api/prompts/support/refund-reply", json={"template": "hacked"})
    assert edit.status_code == 422
    for method in ("put", "patch", "delete"):
        response = client.request(method, "/api/prompts/support/refund-reply/versions/1")
        assert response.status_code == 405, (method, response.text)
    assert client.get("/api/prompts/support/refund-reply/versions/1").json()["template"] == TEXT
    paths = client.get("/api/openapi.json").json()["paths"]
    for path, methods in paths.items():
        if "/versions/{version}" in path:
            assert set(methods) == {"get"}, path

    versions = client.get("/api/prompts/support/refund-reply/versions").json()["data"]
    assert [v["version"] for v in versions] == [2, 1]
    with runtime.db.read() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(store.prompt_versions))
        assert count.scalar() == 2


def test_label_moves_history_and_rollback(client: TestClient):
    create(client)
    save(client, "support/refund-reply", "v2 {{customer}}")
    save(client, "support/refund-reply", "v3 {{customer}}")
    base = "/api/prompts/support/refund-reply"

    assert client.put(f"{base}/labels/production", json={"version": 1}).json() == {
        "name": "production",
        "version": 1,
        "previous_version": None,
        "updated_by": None,
        "updated_at": None,
    }
    moved = client.put(f"{base}/labels/production", json={"version": 3, "reason": "ship"}).json()
    assert (moved["previous_version"], moved["version"]) == (1, 3)
    assert client.get(base, params={"label": "production"}).json()["version"]["version"] == 3

    rolled = client.post(f"{base}/labels/production/rollback")
    assert rolled.status_code == 200, rolled.text
    assert (rolled.json()["previous_version"], rolled.json()["version"]) == (3, 1)
    assert client.get(base, params={"label": "production"}).json()["version"]["version"] == 1

    history = client.get(f"{base}/history", params={"label": "production"}).json()["data"]
    assert [(e["from_version"], e["to_version"]) for e in history] == [(3, 1), (1, 3), (None, 1)]
    assert all(e["actor"] == "key:admin" and e["created_at"] for e in history)
    assert history[0]["reason"] == "rollback from version 3"
    assert history[1]["reason"] == "ship"
    latest = client.get(f"{base}/history", params={"label": "latest"}).json()["data"]
    assert [(e["from_version"], e["to_version"]) for e in latest] == [(2, 3), (1, 2), (None, 1)]

    labels = {row["name"]: row for row in client.get(f"{base}/labels").json()}
    assert labels["production"]["version"] == 1
    assert labels["latest"]["version"] == 3

    assert client.put(f"{base}/labels/latest", json={"version": 1}).status_code == 400
    assert client.delete(f"{base}/labels/production").status_code == 204
    gone = client.get(base, params={"label": "production"})
    assert gone.status_code == 404
    assert "label 'production' not found on prompt 'support/refund-reply'" in gone.json()["detail"]


def test_a_label_cannot_point_at_another_prompts_version(client: TestClient, runtime: Runtime):
    one = create(client, "one")
    create(client, "two")
    save(client, "two", "second")
    # Through the API the version number is taken within the prompt: 'one' has no version 2.
    response = client.put("/api/prompts/one/labels/production", json={"version": 2})
    assert response.status_code == 404
    assert "version 2 of prompt 'one' not found" in response.json()["detail"]
    # And the schema refuses it outright.
    with pytest.raises(sa.exc.IntegrityError), runtime.db.write() as conn:
        conn.execute(
            store.prompt_labels.insert().values(
                prompt_id=one["id"],
                name="production",
                version=2,
                updated_by="sql",
                updated_at=sa.func.now(),
            )
        )


def test_unknown_things_are_404s_naming_them(client: TestClient):
    create(client)
    cases = {
        "/api/prompts/nope/here": "prompt 'nope/here' not found",
        "/api/prompts/support/refund-reply?label=staging": "label 'staging' not found",
        "/api/prompts/support/refund-reply?version=9": "version 9 of prompt",
        "/api/prompts/support/refund-reply/versions/9": "version 9 of prompt",
        "/api/prompts/nope/versions": "prompt 'nope' not found",
    }
    for path, text in cases.items():
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
        assert text in response.json()["detail"], (path, response.json())
    render = client.post("/api/prompts/support/refund-reply/render", json={"label": "gold"})
    assert render.status_code == 404
    assert "label 'gold'" in render.json()["detail"]


def test_invalid_template_is_400_with_line_and_column(client: TestClient):
    response = client.post(
        "/api/prompts",
        json={"name": "bad", "type": "text", "template": "line one\n  {{#items}} x {{/item}}"},
    )
    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "invalid_template"
    assert problem["errors"][0]["line"] == 2
    assert problem["errors"][0]["column"] == 16
    assert "line 2, column 16" in problem["detail"]

    chat = client.post(
        "/api/prompts",
        json={
            "name": "bad-chat",
            "type": "chat",
            "template": [{"role": "system", "content": "ok"}, {"role": "user", "content": "{{x"}],
        },
    )
    assert chat.status_code == 400
    assert chat.json()["errors"][0]["path"] == "template[1].content"
    assert chat.json()["errors"][0]["line"] == 1

    jinja = client.post(
        "/api/prompts",
        json={"name": "j", "type": "text", "template_format": "jinja2", "template": "a\n{% if %}"},
    )
    assert jinja.status_code == 400
    assert jinja.json()["errors"][0]["line"] == 2


def test_bad_names_and_labels(client: TestClient):
    for name in ("a//b", "/a", "a/versions", "a b", "x@y"):
        response = client.post("/api/prompts", json={"name": name, "type": "text", "template": ""})
        assert response.status_code in (400, 422), name
    create(client, "ok")
    assert client.put("/api/prompts/ok/labels/Prod!", json={"version": 1}).status_code == 400


def test_render_strict_and_chat(client: TestClient):
    create(client)
    base = "/api/prompts/support/refund-reply/render"
    ok = client.post(
        base,
        json={"variables": {"customer": "Ada", "order": {"id": 7}, "items": [{"name": "lamp"}]}},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["text"] == "Hello Ada, about order 7:\n- lamp\nThanks."
    assert ok.json()["messages"] == [{"role": "user", "content": ok.json()["text"]}]

    missing = client.post(base, json={"variables": {"items": []}})
    assert missing.status_code == 400
    assert missing.json()["code"] == "missing_variables"
    assert missing.json()["detail"] == "missing variables: customer, order.id"

    client.post(
        "/api/prompts",
        json={
            "name": "chat/triage",
            "type": "chat",
            "config": {"model": "gpt-4o", "temperature": 0},
            "template": [
                {"role": "system", "content": "You triage for {{product}}."},
                {"placeholder": "history"},
                {"role": "user", "content": "{{ticket}}"},
            ],
        },
    )
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    rendered = client.post(
        "/api/prompts/chat/triage/render",
        json={"variables": {"product": "Lamps", "ticket": "broken", "history": history}},
    ).json()
    assert rendered["messages"] == [
        {"role": "system", "content": "You triage for Lamps."},
        *history,
        {"role": "user", "content": "broken"},
    ]
    assert rendered["config"] == {"model": "gpt-4o", "temperature": 0}
    none = client.post("/api/prompts/chat/triage/render", json={"variables": {}})
    assert none.json()["detail"] == "missing variables: product, history, ticket"


def test_composition_and_cycles(client: TestClient):
    create(client, "common/tone", template="Be {{mood}}.", labels=["production"])
    create(client, "reply", template="{{> common/tone@production}} Answer {{q}}.")
    rendered = client.post(
        "/api/prompts/reply/render", json={"variables": {"mood": "kind", "q": "why"}}
    ).json()
    assert rendered["text"] == "Be kind. Answer why."
    assert rendered["includes"] == {"common/tone@production": 1}

    # Moving the included prompt's label changes what renders at once.
    save(client, "common/tone", "Be very {{mood}}.", labels=["production"])
    again = client.post("/api/prompts/reply/render", json={"variables": {"mood": "kind", "q": "?"}})
    assert again.json()["text"] == "Be very kind. Answer ?."

    # A cycle made through a save is refused when saving ...
    cyclic = save(client, "common/tone", "{{> reply@latest}}")
    assert cyclic.status_code == 400
    assert cyclic.json()["code"] == "composition_cycle"
    assert "common/tone -> reply -> common/tone" in cyclic.json()["detail"]
    # ... and one made by moving a label is caught when rendering.
    create(client, "b", template="B")
    save(client, "b", "B {{> a@latest}}")  # 'a' does not exist yet
    create(client, "a", template="A {{> b@production}}")  # b has no production label yet
    assert client.put("/api/prompts/b/labels/production", json={"version": 2}).status_code == 200
    loop = client.post("/api/prompts/a/render", json={"variables": {}})
    assert loop.status_code == 400
    assert loop.json()["code"] == "composition_cycle"

    missing = client.post(
        "/api/prompts", json={"name": "c", "type": "text", "template": "{{> zzz}}"}
    )
    assert missing.status_code == 201  # may be created later
    render = client.post("/api/prompts/c/render", json={"variables": {}})
    assert render.status_code == 404
    assert "prompt 'zzz' not found" in render.json()["detail"]


def test_diff(client: TestClient):
    create(client, "d", template="one\ntwo\n", config={"model": "a", "temperature": 0.1})
    save(client, "d", "one\nthree\n", config={"model": "a", "max_tokens": 5})
    diff = client.get("/api/prompts/d/diff", params={"from": 1, "to": 2})
    assert diff.status_code == 200, diff.text
    body = diff.json()
    assert body["identical"] is False
    assert body["template_diff"].splitlines() == [
        "--- d@1/template",
        "+++ d@2/template",
        "@@ -1,2 +1,2 @@",
        " one",
        "-two",
        "+three",
    ]
    assert body["config_changes"] == [
        {"path": "max_tokens", "change": "added", "from": None, "to": 5},
        {"path": "temperature", "change": "removed", "from": 0.1, "to": None},
    ]
    assert "-temperature: 0.1" in body["config_diff"]
    assert "+max_tokens: 5" in body["config_diff"]
    assert client.get("/api/prompts/d/diff", params={"from": 1, "to": 7}).status_code == 404


def test_scopes_and_projects(client: TestClient):
    create(client)
    reader = client.post("/api/projects/1/keys", json={"name": "r", "scopes": ["read"]}).json()
    auth = {"Authorization": f"Bearer {reader['key']}"}
    assert client.get("/api/prompts/support/refund-reply", headers=auth).status_code == 200
    denied = client.post(
        "/api/prompts/support/refund-reply/versions", json={"template": "x"}, headers=auth
    )
    assert denied.status_code == 403
    # A second project's prompts are separate.
    other = client.post("/api/projects", json={"name": "other"}).json()
    assert client.get(f"/api/prompts?project_id={other['id']}").json()["data"] == []
    created = client.post(
        f"/api/prompts?project_id={other['id']}",
        json={"name": "support/refund-reply", "type": "text", "template": "other"},
    )
    assert created.status_code == 201
    assert created.json()["project_id"] == other["id"]


def test_delete_and_metadata(client: TestClient):
    create(client)
    patched = client.patch(
        "/api/prompts/support/refund-reply", json={"description": "refunds", "tags": ["b", "a"]}
    )
    assert patched.json()["tags"] == ["a", "b"]
    assert patched.json()["description"] == "refunds"
    assert client.delete("/api/prompts/support/refund-reply").status_code == 204
    assert client.get("/api/prompts/support/refund-reply").status_code == 404


def test_routes_are_in_openapi(client: TestClient):
    paths = client.get("/api/openapi.json").json()["paths"]
    for path in (
        "/api/prompts",
        "/api/prompts/{name}",
        "/api/prompts/{name}/render",
        "/api/prompts/{name}/versions",
        "/api/prompts/{name}/versions/{version}",
        "/api/prompts/{name}/labels/{label}",
        "/api/prompts/{name}/labels/{label}/rollback",
        "/api/prompts/{name}/history",
        "/api/prompts/{name}/diff",
    ):
        assert path in paths, path


def test_users_name_the_project(client: TestClient):
    import base64

    from tests.conftest import ADMIN_PASSWORD

    token = base64.b64encode(f"admin@localhost:{ADMIN_PASSWORD}".encode()).decode()
    user = {"Authorization": f"Basic {token}"}
    missing = client.get("/api/prompts", headers=user)
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["path"] == "query.project_id"
    created = client.post(
        "/api/prompts?project_id=1",
        json={"name": "by-user", "type": "text", "template": "x"},
        headers=user,
    )
    assert created.status_code == 201, created.text
    assert created.json()["version"]["author"] == "admin@localhost"
    assert client.get("/api/prompts/by-user").json()["project_id"] == 1


def test_nul_characters_are_400s_on_both_backends(client: TestClient):
    create(client, "m")
    requests = [
        client.get("/api/prompts", params={"q": "a\x00"}),
        client.get("/api/prompts", params={"tag": "a\x00"}),
        client.get("/api/prompts/m", params={"label": "a\x00"}),
        client.get("/api/prompts/a%00b"),
        client.post("/api/prompts/m/labels/a%00/rollback"),
        client.post("/api/prompts/m/render", json={"label": "a\x00"}),
        client.patch("/api/prompts/m", json={"tags": ["a\x00"]}),
        client.post("/api/prompts/m/versions", json={"template": "x\x00"}),
        client.post("/api/prompts/m/versions", json={"template": "x", "config": {"k\x00": 1}}),
    ]
    assert [r.status_code for r in requests] == [422, 422, 422, 400, 400, 422, 400, 400, 400]
