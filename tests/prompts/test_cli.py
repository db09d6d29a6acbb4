"""``pilothouse prompts``: pull -> edit -> push, dry runs, labels, diff, promote, rollback."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from pilothouse.cli import cli
from pilothouse.prompts.client import PromptsClient
from pilothouse.prompts.files import read_folder
from tests.conftest import ADMIN_KEY, LiveServer


def run(server: LiveServer, *args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(
        cli, ["prompts", "--url", server.url, "--key", ADMIN_KEY, *args], env={}
    )
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code != 0, result.output
    return result.output


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_folder_sync_round_trip(live_server: LiveServer, tmp_path: Path):
    src = tmp_path / "src"
    write(
        src,
        "support/refund.md",
        "---\ndescription: Refunds\ntags: [support]\nconfig: {model: mock-small}\n---\n"
        "Hello {{customer}},\n\nyour refund of {{amount}} is on its way.\n",
    )
    write(
        src,
        "support/triage.yaml",
        "type: chat\nconfig:\n  model: mock-small\n  temperature: 0.1\nmessages:\n"
        "  - role: system\n    content: |\n      You triage tickets for {{product}}.\n"
        "  - placeholder: history\n  - role: user\n    content: '{{ticket}}'\n",
    )
    write(src, "sales/pitch.md", "Buy {{thing}}.\n")

    dry = run(live_server, "push", str(src), "--dry-run")
    assert "created support/refund v1 (dry run)" in dry
    assert "3 created, 0 updated, 0 unchanged (dry run)" in dry
    assert run(live_server, "list") == ""

    first = run(live_server, "push", str(src), "--label", "staging", "-m", "initial")
    assert "3 created, 0 updated, 0 unchanged" in first
    listed = run(live_server, "list")
    assert "support/refund" in listed and "staging=v1" in listed

    # Pull into a fresh folder: the same prompts come back, byte for byte equivalent content.
    out = tmp_path / "out"
    pulled = run(live_server, "pull", str(out))
    assert "3 prompt(s) written" in pulled
    originals = {p.name: p.content_hash for p in read_folder(src)}
    assert {p.name: p.content_hash for p in read_folder(out)} == originals
    assert (
        (out / "support/refund.md")
        .read_text()
        .endswith("Hello {{customer}},\n\nyour refund of {{amount}} is on its way.\n")
    )

    again = run(live_server, "push", str(out))
    assert "0 created, 0 updated, 3 unchanged" in again

    # Edit one file: exactly one new version, for that prompt only.
    refund = out / "support/refund.md"
    refund.write_text(refund.read_text().replace("on its way", "sent"))
    (out / "support/triage.yaml").write_text(
        (out / "support/triage.yaml").read_text().replace("temperature: 0.1", "temperature: 0.2")
    )
    dry = run(live_server, "push", str(out), "--dry-run", "--json")
    report = json.loads(dry)
    assert report["counts"] == {"created": 0, "updated": 2, "unchanged": 1}
    pushed = run(live_server, "push", str(out), "--label", "staging")
    assert "updated support/refund v1 -> v2 (staging)" in pushed
    assert "updated support/triage v1 -> v2 (staging)" in pushed
    assert "unchanged sales/pitch v1" in pushed

    client = PromptsClient(live_server.url, ADMIN_KEY)
    try:
        versions = {r["name"]: r["labels"] for r in client.list()}
        assert versions == {
            "sales/pitch": {"latest": 1, "staging": 1},
            "support/refund": {"latest": 2, "staging": 2},
            "support/triage": {"latest": 2, "staging": 2},
        }
        refund_prompt = client.get("support/refund")
        assert refund_prompt["description"] == "Refunds"
        assert refund_prompt["version"]["config"] == {"model": "mock-small"}
    finally:
        client.close()

    diff = run(live_server, "diff", "support/refund", "1", "2")
    assert "-your refund of {{amount}} is on its way." in diff
    assert "+your refund of {{amount}} is sent." in diff
    assert diff.startswith("--- support/refund@1/template\n+++ support/refund@2/template\n")
    config_diff = run(live_server, "diff", "support/triage", "1", "2")
    assert "-temperature: 0.1\n+temperature: 0.2" in config_diff

    # Promotion in CI: staging -> production, then a rollback of one prompt.
    promoted = run(live_server, "promote", "staging", "production")
    assert "support/refund: production -> v2" in promoted
    assert "production already" not in promoted
    assert "production already at v2" in run(live_server, "promote", "staging", "production")
    run(live_server, "label", "support/refund", "production", "1")
    rolled = run(live_server, "rollback", "support/refund", "production")
    assert "production v1 -> v2" in rolled
    history = run(live_server, "history", "support/refund", "--label", "production")
    assert history.count("by key:admin") == 3

    rendered = run(
        live_server,
        "render",
        "support/refund",
        "--label",
        "production",
        "--var",
        "customer=Ada",
        "--var",
        "amount=$5",
    )
    assert rendered == "Hello Ada,\n\nyour refund of $5 is sent.\n"
    missing = run(live_server, "render", "support/refund", ok=False)
    assert "missing variables: customer, amount" in missing
    shown = run(live_server, "show", "support/triage", "--label", "production")
    assert "support/triage v2 (chat, mustache)" in shown


def test_bad_files_are_reported_by_path(live_server: LiveServer, tmp_path: Path):
    write(tmp_path, "a.md", "---\nnot: [closed\n")
    assert "front matter" in run(live_server, "push", str(tmp_path), ok=False)
    (tmp_path / "a.md").unlink()
    write(tmp_path, "b.yaml", "type: chat\nmessages: hello\n")
    assert "b.yaml: a chat prompt lists its messages" in run(
        live_server, "push", str(tmp_path), ok=False
    )
    (tmp_path / "b.yaml").unlink()
    write(tmp_path, "c.md", "{{#open}}")
    output = run(live_server, "push", str(tmp_path), ok=False)
    assert "section 'open' is never closed" in output


def test_unreachable_server_is_one_line(tmp_path: Path):
    result = CliRunner().invoke(
        cli, ["prompts", "--url", "http://127.0.0.1:9", "--key", "x", "list"], env={}
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot reach http://127.0.0.1:9")
