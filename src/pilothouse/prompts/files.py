"""Prompts as code: a folder of prompt files, one per prompt, named by the prompt's path.

``support/refund-reply.md`` — a text prompt: optional YAML front matter, then the template::

    ---
    description: Answer a refund request
    tags: [support]
    config: {model: gpt-4o-mini, temperature: 0.2}
    ---
    Hello {{customer}}, ...

``support/triage.yaml`` — any prompt; chat prompts list ``messages``::

    type: chat
    config: {model: gpt-4o}
    messages:
      - role: system
        content: You triage tickets for {{product}}.
      - placeholder: history
      - role: user
        content: "{{ticket}}"

Keys: ``type`` (text or chat; ``.md`` files are text), ``template_format`` (mustache or
jinja2), ``description``, ``tags``, ``config``, and ``template`` (text) or ``messages`` (chat).
A Markdown body's final newline is not part of the template.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pilothouse.errors import BadRequest
from pilothouse.prompts import model

SUFFIXES = (".md", ".yaml", ".yml")
_KEYS = {"name", "type", "template_format", "description", "tags", "config", "template", "messages"}


@dataclass
class PromptFile:
    """One prompt as a file holds it."""

    name: str
    type: str
    template: Any
    template_format: str = "mustache"
    config: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    tags: list[str] = field(default_factory=list)
    path: Path | None = None

    @property
    def content_hash(self) -> str:
        return model.content_hash(self.type, self.template_format, self.template, self.config)

    @classmethod
    def from_api(cls, prompt: dict[str, Any]) -> PromptFile:
        version = prompt["version"]
        return cls(
            name=prompt["name"],
            type=prompt["type"],
            template=version["template"],
            template_format=version["template_format"],
            config=dict(version["config"]),
            description=prompt.get("description", ""),
            tags=list(prompt.get("tags", [])),
        )


def _fail(path: Path, reason: str) -> BadRequest:
    return BadRequest(f"{path}: {reason}", param=str(path))


def _parse(path: Path, name: str) -> PromptFile:
    text = path.read_text(encoding="utf-8")
    body: str | None = None
    if path.suffix == ".md":
        meta: Any = {}
        if text.startswith("---\n"):
            end = text.find("\n---\n", 3)
            if end < 0:
                raise _fail(path, "front matter opened with '---' is never closed")
            meta = yaml.safe_load(text[4:end]) or {}
            text = text[end + 5 :]
        body = text[:-1] if text.endswith("\n") else text
    else:
        meta = yaml.safe_load(text) or {}
    if not isinstance(meta, dict):
        raise _fail(path, "expected YAML keys (type, config, template or messages...)")
    unknown = set(meta) - _KEYS
    if unknown:
        raise _fail(path, f"unknown key {sorted(unknown)[0]!r}")
    if meta.get("name", name) != name:
        raise _fail(path, f"names the prompt {meta['name']!r} but its path makes it {name!r}")
    kind = meta.get("type") or ("chat" if "messages" in meta else "text")
    if body is not None:
        if kind != "text" or "messages" in meta or "template" in meta:
            raise _fail(path, "a Markdown prompt is a text prompt whose body is the template")
        template: Any = body
    elif kind == "chat":
        template = meta.get("messages")
        if not isinstance(template, list):
            raise _fail(path, "a chat prompt lists its messages under 'messages'")
    else:
        template = meta.get("template")
        if not isinstance(template, str):
            raise _fail(path, "a text prompt has its template under 'template'")
    config = meta.get("config") or {}
    tags = meta.get("tags") or []
    if not isinstance(config, dict):
        raise _fail(path, "config is a mapping")
    if not isinstance(tags, list):
        raise _fail(path, "tags is a list")
    return PromptFile(
        name=name,
        type=kind,
        template=template,
        template_format=str(meta.get("template_format") or "mustache"),
        config=config,
        description=str(meta.get("description") or ""),
        tags=[str(t) for t in tags],
        path=path,
    )


def read_folder(root: Path) -> list[PromptFile]:
    """Every prompt file under ``root``, by name; BadRequest naming the first bad file."""
    if not root.is_dir():
        raise BadRequest(f"{root} is not a folder", param="dir")
    found: dict[str, PromptFile] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix not in SUFFIXES or not path.is_file():
            continue
        name = path.relative_to(root).with_suffix("").as_posix()
        try:
            model.check_name(name)
        except BadRequest as exc:
            raise _fail(path, exc.detail) from None
        if name in found:
            raise _fail(path, f"prompt {name!r} is also defined in {found[name].path}")
        found[name] = _parse(path, name)
    return list(found.values())


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def render_file(prompt: PromptFile) -> tuple[str, str]:
    """The file suffix and text for a prompt: Markdown for text, YAML for chat."""
    meta: dict[str, Any] = {}
    if prompt.type == "chat":
        meta["type"] = "chat"
    if prompt.template_format != "mustache":
        meta["template_format"] = prompt.template_format
    if prompt.description:
        meta["description"] = prompt.description
    if prompt.tags:
        meta["tags"] = prompt.tags
    if prompt.config:
        meta["config"] = prompt.config
    if prompt.type == "chat":
        return ".yaml", _yaml({**meta, "messages": prompt.template})
    front = f"---\n{_yaml(meta)}---\n" if meta else ""
    if prompt.template.startswith("---\n") and not front:
        front = "---\n---\n"  # keep a template that starts with '---' from reading as metadata
    return ".md", front + prompt.template + "\n"


def write_file(root: Path, prompt: PromptFile) -> Path:
    """Write one prompt under ``root``; replaces its other-format file if any."""
    suffix, text = render_file(prompt)
    path = root / (prompt.name + suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    for other in SUFFIXES:
        stale = root / (prompt.name + other)
        if other != suffix and stale.exists():
            stale.unlink()
    path.write_text(text, encoding="utf-8")
    return path


__all__ = ["PromptFile", "read_folder", "render_file", "write_file"]
