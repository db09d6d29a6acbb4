"""What a prompt is, independent of storage: names, labels, model config, content hash, diff.

Shared by the server, the SDK and the CLI so that all three agree on what "the same content"
means (the content hash) and on what a valid name is.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from typing import Any

import yaml

from pilothouse.errors import BadRequest

#: Path-like names: segments of letters, digits, ``.``, ``_`` and ``-`` joined by ``/``.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$"
NAME_MAX = 200
#: Segments that would make ``/api/prompts/{name}/...`` ambiguous.
RESERVED_SEGMENTS = frozenset({"versions", "labels", "render", "diff", "history"})
LABEL_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"
#: The label moved to every new version automatically.
LATEST = "latest"
TYPES = ("text", "chat")

_NAME = re.compile(NAME_PATTERN)
_LABEL = re.compile(LABEL_PATTERN)


def check_name(name: str, param: str = "name") -> str:
    """The name if it is a valid prompt name, else BadRequest saying why."""
    if len(name) > NAME_MAX or not _NAME.match(name):
        raise BadRequest(
            f"{name!r} is not a prompt name: use segments of letters, digits, '.', '_' and '-' "
            f"joined by '/', at most {NAME_MAX} characters",
            param=param,
        )
    reserved = RESERVED_SEGMENTS.intersection(name.split("/"))
    if reserved:
        raise BadRequest(
            f"{name!r} is not a prompt name: {sorted(reserved)[0]!r} is reserved as a segment",
            param=param,
        )
    return name


def check_label(label: str, param: str = "label") -> str:
    if not _LABEL.match(label):
        raise BadRequest(
            f"{label!r} is not a label: lowercase letters, digits, '.', '_' and '-', starting "
            "with a letter, at most 64 characters",
            param=param,
        )
    return label


def check_text(value: Any, param: str) -> None:
    """BadRequest if any string in ``value`` (nested) holds a NUL character (PostgreSQL cannot
    store one)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise BadRequest("text may not contain NUL characters", param=param)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, param)
            check_text(item, f"{param}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_text(item, f"{param}[{i}]")


def content_hash(
    prompt_type: str, template_format: str, template: Any, config: dict[str, Any]
) -> str:
    """SHA-256 of the canonical JSON of what a version holds (identical content, same hash)."""
    canonical = json.dumps(
        {"type": prompt_type, "format": template_format, "template": template, "config": config},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def template_text(template: Any) -> str:
    """A template as text lines, for diffs: text as-is, chat messages as YAML."""
    if isinstance(template, str):
        return template
    return yaml.safe_dump(template, sort_keys=False, allow_unicode=True, width=1_000_000)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key in value:
            out.update(_flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Field-level changes between two model configs: path, change, from, to."""
    before, after = _flatten(old), _flatten(new)
    before.pop("", None)
    after.pop("", None)
    out = []
    for path in sorted(before.keys() | after.keys()):
        if path not in after:
            out.append({"path": path, "change": "removed", "from": before[path], "to": None})
        elif path not in before:
            out.append({"path": path, "change": "added", "from": None, "to": after[path]})
        elif before[path] != after[path]:
            out.append({"path": path, "change": "changed", "from": before[path], "to": after[path]})
    return out


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def diff_versions(name: str, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The difference between two versions (rows or API dicts): template and config."""
    a, b = f"{name}@{old['version']}", f"{name}@{new['version']}"
    template_diff = "".join(
        difflib.unified_diff(
            _lines(template_text(old["template"])),
            _lines(template_text(new["template"])),
            fromfile=f"{a}/template",
            tofile=f"{b}/template",
        )
    )
    old_config = yaml.safe_dump(old["config"], sort_keys=True) if old["config"] else ""
    new_config = yaml.safe_dump(new["config"], sort_keys=True) if new["config"] else ""
    config_diff = "".join(
        difflib.unified_diff(
            _lines(old_config), _lines(new_config), fromfile=f"{a}/config", tofile=f"{b}/config"
        )
    )
    format_change = None
    if old["template_format"] != new["template_format"]:
        format_change = {"from": old["template_format"], "to": new["template_format"]}
    return {
        "name": name,
        "from_version": old["version"],
        "to_version": new["version"],
        "identical": old["content_hash"] == new["content_hash"],
        "template_diff": template_diff,
        "config_diff": config_diff,
        "config_changes": config_changes(old["config"], new["config"]),
        "template_format": format_change,
        "unified": template_diff + config_diff,
    }


__all__ = [
    "LABEL_PATTERN",
    "LATEST",
    "NAME_PATTERN",
    "RESERVED_SEGMENTS",
    "TYPES",
    "check_label",
    "check_name",
    "check_text",
    "config_changes",
    "content_hash",
    "diff_versions",
    "template_text",
]
