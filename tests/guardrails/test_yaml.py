# ruff: noqa: E501
"""Policies under ``guardrails:`` in ``pilothouse.yaml``: field-path errors, attach, reload."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from pilothouse.errors import ConfigError
from pilothouse.gateway.call import Call
from pilothouse.gateway.config import load, parse
from pilothouse.gateway.plugin import gateway_of
from pilothouse.guardrails import embeddings
from pilothouse.guardrails.engine import Guardrails
from pilothouse.guardrails.gateway import select_policy
from pilothouse.identity.keys import ApiKey
from tests.conftest import ADMIN_KEY
from tests.gateway.conftest import GatewayFactory
from tests.guardrails.test_topics import MEDICAL

ECHO = {"mock/echo": {"deployments": [{"provider": "mock", "model": "echo"}]}}
SECRET = "ghp_" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe9Dc8"


def section(**policies: Any) -> dict[str, Any]:
    return {"models": ECHO, "guardrails": {"policies": policies}}


@pytest.mark.parametrize(
    ("doc", "path", "reason"),
    [
        ({"guardrails": []}, "guardrails", "expected a mapping"),
        ({"guardrails": {"polices": {}}}, "guardrails.polices", "unknown key"),
        ({"guardrails": {"policies": ["x"]}}, "guardrails.policies", "expected a mapping"),
        (section(p={"input": [{"check": "nope"}]}), "guardrails.policies.p.input[0].check", "unknown check"),
        (section(p={"input": [{"check": "pii", "action": "shred"}]}), "guardrails.policies.p.input[0].action", "expected one of"),
        (section(p={"input": [{"check": "pii", "threshold": 2}]}), "guardrails.policies.p.input[0].threshold", "between 0 and 1"),
        (section(p={"output": [{"check": "injection"}]}), "guardrails.policies.p.output[0].check", "does not run on output"),
        (section(p={"input": [{"check": "toxicity", "action": "redact"}]}), "guardrails.policies.p.input[0].action", "cannot redact"),
        (section(p={"inputs": []}), "guardrails.policies.p", "unknown field"),
        (section(p={"attach": {"projects": ["one"]}}), "guardrails.policies.p.attach.projects", "integer"),
        (section(p={"attach": {"model": ["x"]}}), "guardrails.policies.p.attach.model", "unknown field"),
        ({"guardrails": {"gateway_policy": "ghost"}}, "guardrails.gateway_policy", "unknown policy"),
        ({"guardrails": {"embedder": "word2vec"}}, "guardrails.embedder", "expected sentence-transformers"),
        ({"guardrails": {"embedder": 3}}, "guardrails.embedder", "package.module:function"),
        ({"guardrails": {"ner": "nltk:"}}, "guardrails.ner", "expected spacy"),
    ],
)  # fmt: skip
def test_bad_entries_name_the_field(doc: Any, path: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(doc)
    assert caught.value.param == path
    assert reason in caught.value.detail


def test_the_section_is_kept_as_data(tmp_path: Path) -> None:
    path = tmp_path / "pilothouse.yaml"
    doc = section(p={"input": ["pii"], "attach": {"prompts": "support"}})
    doc["guardrails"]["gateway_policy"] = "p"
    path.write_text(yaml.safe_dump(doc))
    config = load(path)
    assert config.guardrails["gateway_policy"] == "p"
    guard = Guardrails.load(section=config.guardrails)
    assert guard.gateway_policy == "p"
    assert guard.policies["p"].attach.prompts == ("support",)
    assert "default" in guard.policies  # built-ins stay available


def key(name: str = "app", project: int = 1, **limits: Any) -> ApiKey:
    return ApiKey(1, name, project, 1, frozenset(), limits, None)


def test_attach_order_key_prompt_model_project() -> None:
    attach = {
        "by-project": {"projects": [7]},
        "by-model": {"models": ["gpt"]},
        "by-prompt": {"prompts": ["faq"]},
        "by-key": {"keys": ["bot"]},
    }
    guard = Guardrails.load(
        section={"policies": {n: {"input": ["pii"], "attach": a} for n, a in attach.items()}}
    )

    def chosen(api_key: ApiKey, model: str = "other", prompt: str | None = None) -> str | None:
        call = Call(None, api_key, "chat", {"model": model}, "r", {})  # type: ignore[arg-type]
        call.prompt_name = prompt
        policy = select_policy(guard, call, "")
        return policy.name if policy else None

    assert chosen(key("bot", 7), "gpt", "faq") == "by-key"
    assert chosen(key("app", 7), "gpt", "faq") == "by-prompt"
    assert chosen(key("app", 7), "gpt") == "by-model"
    assert chosen(key("app", 7)) == "by-project"
    assert chosen(key("app", 8)) is None
    assert chosen(key("app", 8, guardrail_policy="strict"), "gpt") == "strict"
    guard.gateway_policy = "monitor"
    assert chosen(key("app", 8)) == "monitor"


def ask(client: openai.OpenAI, text: str, model: str = "mock/echo") -> str:
    answer = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": text}]
    )
    return answer.choices[0].message.content or ""


def test_yaml_policies_attach_in_the_gateway_and_reload(make_gateway: GatewayFactory) -> None:
    models = {**ECHO, "mock/other": {"deployments": [{"provider": "mock", "model": "echo"}]}}
    gw = make_gateway(models)
    blocking = {
        "input": [{"check": "secrets", "action": "block"}],
        "attach": {"models": ["mock/echo"]},
    }
    gw.write_config({"models": models, "guardrails": {"policies": {"no-secrets": blocking}}})
    assert gateway_of(gw.runtime).source.reload_if_changed()
    with pytest.raises(openai.BadRequestError) as info:
        ask(gw.client(), f"use {SECRET}")
    assert "'no-secrets'" in info.value.message and SECRET not in info.value.response.text
    assert SECRET in ask(gw.client(), f"use {SECRET}", "mock/other")  # not attached there
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    listed = httpx.get(gw.url + "/api/guardrails/policies", headers=auth).json()
    assert "no-secrets" in [p["name"] for p in listed]

    # Edit: attach to the other model and redact instead; the file reloads without a restart.
    redacting = {
        "input": [{"check": "secrets", "action": "redact"}],
        "attach": {"models": ["mock/other"]},
    }
    gw.write_config({"models": models, "guardrails": {"policies": {"no-secrets": redacting}}})
    assert gateway_of(gw.runtime).source.reload_if_changed()
    assert SECRET in ask(gw.client(), f"use {SECRET}")
    assert ask(gw.client(), f"use {SECRET}", "mock/other") == "use <GITHUB_TOKEN_1>"

    # A bad edit is refused by the gateway's loader: the last good policies stay in force.
    broken = {"no-secrets": {"input": [{"check": "secrets", "action": "shred"}]}}
    gw.write_config({"models": models, "guardrails": {"policies": broken}})
    assert not gateway_of(gw.runtime).source.reload_if_changed()
    assert ask(gw.client(), f"use {SECRET}", "mock/other") == "use <GITHUB_TOKEN_1>"


def test_gateway_policy_of_the_yaml_applies_to_every_call(make_gateway: GatewayFactory) -> None:
    gw = make_gateway()
    gw.write_config({"models": ECHO, "guardrails": {"gateway_policy": "redact-pii"}})
    assert gateway_of(gw.runtime).source.reload_if_changed()
    assert ask(gw.client(), "mail ada@example.com") == "mail <EMAIL_1>"


@pytest.fixture
def restore_embedder() -> Iterator[None]:
    with embeddings.using(None):
        yield


def test_the_embedder_of_the_yaml_serves_the_topics_check(
    make_gateway: GatewayFactory, restore_embedder: None
) -> None:
    gw = make_gateway()
    rule = {"check": "topics", "action": "block", "options": {"deny": {"medical": MEDICAL}}}
    gw.write_config(
        {
            "models": ECHO,
            "guardrails": {
                "embedder": "tests.guardrails.test_topics:concept_embedder",
                "gateway_policy": "on-topic",
                "policies": {"on-topic": {"input": [rule]}},
            },
        }
    )
    assert gateway_of(gw.runtime).source.reload_if_changed()
    with pytest.raises(openai.BadRequestError) as info:
        ask(gw.client(), "How many pills should I take for my fever?")
    assert "'topics' check fired" in info.value.message
    assert ask(gw.client(), "Send the invoice again") == "Send the invoice again"
    current = embeddings.current()
    assert current is not None and current.name == "tests.guardrails.test_topics:concept_embedder"
