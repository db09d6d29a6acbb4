"""promptfoo import: real-world-shaped configs convert, unsupported features are reported."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from pilothouse.cli import cli
from pilothouse.evals.promptfoo import convert

TRANSLATION = """
description: Translation quality
prompts:
  - "Translate the following text to {{language}}: {{input}}"
  - file://prompts/chat.json
providers:
  - openai:gpt-4o-mini
  - id: openai:chat:gpt-4o
    label: big
    config:
      temperature: 0
      apiKey: sk-not-here
tests:
  - vars: {language: French, input: Hello world}
    assert:
      - type: contains
        value: Bonjour
      - type: javascript
        value: output.length < 100
  - description: polite German
    vars: {language: German, input: Good morning}
    assert:
      - type: icontains
        value: guten
      - type: icontains
        value: morgen
      - type: llm-rubric
        value: is a polite greeting
      - type: similar
        value: Guten Morgen
        threshold: 0.8
  - vars: {language: JSON, input: "{}"}
    assert:
      - type: is-json
        value: {type: object}
      - type: cost
        threshold: 0.002
      - type: latency
        threshold: 5000
"""

SUPPORT_BOT = """
description: Support bot regression suite
prompts: [file://prompt.txt]
providers:
  - anthropic:messages:claude-3-5-sonnet-20241022
  - openai:chat:gpt-4o-mini
defaultTest:
  vars: {company: Acme}
  assert:
    - type: not-contains
      value: As an AI
    - type: latency
      threshold: 3000
  options: {provider: openai:gpt-4o}
scenarios:
  - config: [{vars: {tone: formal}}]
outputPath: results.json
tests:
  - vars: {question: "How do I reset my password?"}
    assert:
      - type: contains-any
        value: [reset, password]
      - type: regex
        value: "(?i)settings"
      - type: equals
        value: "Go to {{company}} settings"
  - vars: {question: "Refund?"}
    threshold: 0.5
    assert:
      - type: contains-json
      - type: icontains-all
        value: [refund, days]
        transform: output.toLowerCase()
  - file://more_tests.yaml
"""


def test_translation_suite_converts_with_each_gap_reported(tmp_path: Path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "chat.json").write_text(
        json.dumps(
            [
                {"role": "system", "content": "You translate."},
                {"role": "user", "content": "{{input}} -> {{language}}"},
            ]
        )
    )
    path = tmp_path / "promptfooconfig.yaml"
    path.write_text(TRANSLATION)
    imported = convert(path)
    config = imported.config
    assert [p["type"] for p in config["prompts"]] == ["text", "chat"]
    assert config["prompts"][0]["template"].startswith("Translate the following text")
    assert [t["model"] for t in config["targets"]] == ["gpt-4o-mini", "gpt-4o"] * 2
    assert config["targets"][1]["params"] == {"temperature": 0}
    names = {e["name"]: e for e in config["evaluators"]}
    assert set(names) == {
        "contains", "icontains", "icontains-2", "llm-judge", "embedding-similarity",
        "json-schema", "cost", "latency",
    }  # fmt: skip
    assert all(e["per_item"] for e in names.values())
    first, german, as_json = imported.items
    assert first["input"] == {"language": "French", "input": "Hello world"}
    assert first["metadata"]["assert"] == {"contains": {"value": "Bonjour"}}
    assert german["metadata"]["description"] == "polite German"
    assert german["metadata"]["assert"]["icontains-2"] == {"value": "morgen"}
    assert german["metadata"]["assert"]["llm-judge"] == {
        "criteria": "is a polite greeting", "threshold": 0.5, "rubric": "custom", "scale": [0, 1],
    }  # fmt: skip
    assert german["metadata"]["assert"]["embedding-similarity"]["threshold"] == 0.8
    assert as_json["metadata"]["assert"]["cost"] == {"max_usd": 0.002}
    assert as_json["metadata"]["assert"]["json-schema"] == {"schema": {"type": "object"}}
    assert imported.unsupported == [
        "providers[1].config.apiKey: not supported (configure upstreams in the gateway)",
        "tests[0].assert[1]: assert type 'javascript' is not supported",
    ]


def test_support_bot_suite_reports_every_unsupported_feature(tmp_path: Path):
    (tmp_path / "prompt.txt").write_text("You work for {{company}}. {{question}}")
    path = tmp_path / "promptfooconfig.yaml"
    path.write_text(SUPPORT_BOT)
    imported = convert(path)
    assert imported.unsupported == [
        "outputPath: not supported",
        "scenarios: not supported",
        "providers[0]: anthropic:messages:claude-3-5-sonnet-20241022: only OpenAI-compatible "
        "providers (openai:...) are supported",
        "defaultTest.options: not supported",
        "defaultTest.assert[0]: assert type 'not-contains' is not supported",
        "tests[0].assert[2].value: templated assert values are not supported",
        "tests[1].threshold: not supported",
        "tests[1].assert[1].transform: not supported",
        "tests[2]: expected an object (tests from files are not supported)",
    ]
    config = imported.config
    assert [t["model"] for t in config["targets"]] == ["gpt-4o-mini"]
    assert config["evaluators"][0] == {"type": "latency", "name": "all:latency", "max_ms": 3000}
    items = imported.items
    assert items[0]["input"] == {"company": "Acme", "question": "How do I reset my password?"}
    assert items[0]["metadata"]["assert"]["regex"] == {"pattern": "(?i)settings"}
    assert items[1]["metadata"]["assert"]["icontains"] == {
        "value": ["refund", "days"],
        "mode": "all",
    }


def test_imported_suite_runs_through_the_gate(tmp_path: Path):
    path = tmp_path / "promptfooconfig.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "prompts": ["Say {{word}}"],
                "providers": ["openai:mock/echo"],
                "tests": [
                    {"vars": {"word": "hello"},
                     "assert": [{"type": "equals", "value": "Say hello"}]},
                    {"vars": {"word": "yes"}, "assert": [{"type": "icontains", "value": "YES"},
                                                         {"type": "latency", "threshold": 60000}]},
                ],
            }
        )
    )  # fmt: skip
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(cli, ["eval", "import-promptfoo", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "Not converted" not in result.output
    run = runner.invoke(cli, ["eval", "run", "--ephemeral", "--quiet", str(out / "eval.yaml"),
                              "--json", "-"])  # fmt: skip
    assert run.exit_code == 0, run.output
    summary = json.loads(run.output)["summaries"]["1:mock/echo"]["evaluators"]
    assert summary["equals"]["n"] == 1 and summary["equals"]["pass_rate"] == 1.0
    assert summary["icontains"]["n"] == 1 and summary["latency"]["passed"] == 1
    # A failing assertion fails the gate, as it fails promptfoo.
    config = yaml.safe_load((out / "eval.yaml").read_text())
    lines = (out / "promptfoo.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["metadata"]["assert"]["equals"]["value"] = "Say goodbye"
    (out / "promptfoo.jsonl").write_text(json.dumps(first) + "\n" + lines[1] + "\n")
    assert config["thresholds"][0] == {"evaluator": "equals", "min_pass_rate": 1.0}
    failed = runner.invoke(cli, ["eval", "run", "--ephemeral", "--quiet", str(out / "eval.yaml")])
    assert failed.exit_code == 1, failed.output
    strict = runner.invoke(cli, ["eval", "import-promptfoo", str(path), "-o", str(out), "--strict"])
    assert strict.exit_code == 0
