"""Prompt templates: strict mustache-style by default, sandboxed Jinja2 on request.

Mustache-style syntax (a safe subset: no code, no HTML escaping, no delimiter changes)::

    {{name}}  {{user.name}}  {{{raw}}} {{&raw}}   a value (dicts/lists are written as JSON)
    {{#items}}- {{.}}{{/items}}                    a section: once per list item, once if truthy
    {{^items}}none{{/items}}                      an inverted section: when falsy or empty
    {{! a comment }}                               nothing
    {{> support/tone@production}}                  another prompt, by label or ``@3`` version

Rendering is strict: every missing variable is collected and reported in one error. Section,
comment and standalone tag lines are removed whole, as in the mustache spec, so templates can
be laid out readably. Parsing errors carry line and column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jinja2
from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from pilothouse.errors import BadRequest

TemplateFormat = Literal["mustache", "jinja2"]
FORMATS: tuple[str, ...] = ("mustache", "jinja2")

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*"
_REF = re.compile(rf"^({_NAME})(?:@([A-Za-z][A-Za-z0-9_.-]*|[0-9]+))?$")
_VAR = re.compile(r"^(?:\.|[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*)$")
#: The label a reference without ``@`` uses.
DEFAULT_REF_LABEL = "production"


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to another prompt: ``name@label`` or ``name@3``."""

    name: str
    label: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        return f"{self.name}@{self.version if self.version is not None else self.label}"

    @classmethod
    def parse(cls, text: str) -> Ref | None:
        found = _REF.match(text.strip())
        if found is None:
            return None
        name, selector = found.group(1), found.group(2)
        if selector is None:
            return cls(name, DEFAULT_REF_LABEL)
        if selector.isdigit():
            return cls(name, None, int(selector))
        return cls(name, selector)


def position(source: str, offset: int) -> tuple[int, int]:
    """Line and column (both 1-based) of ``offset`` in ``source``."""
    return source.count("\n", 0, offset) + 1, offset - source.rfind("\n", 0, offset)


def template_error(source: str, offset: int, reason: str, where: str) -> BadRequest:
    """A 400 naming the line and column of ``offset`` in ``source``."""
    return located_error(*position(source, offset), reason, where)


def located_error(line: int, column: int | None, reason: str, where: str) -> BadRequest:
    at = f"line {line}" + (f", column {column}" if column is not None else "")
    error: dict[str, Any] = {"path": where, "reason": reason, "line": line, "column": column}
    return BadRequest(
        f"invalid template in {where} at {at}: {reason}",
        code="invalid_template",
        errors=[error],
    )


def missing_error(names: Sequence[str]) -> BadRequest:
    """One error listing every missing variable."""
    return BadRequest(
        f"missing variables: {', '.join(names)}",
        code="missing_variables",
        errors=[{"path": f"variables.{n}", "reason": "missing"} for n in names],
    )


# --- mustache ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Var:
    name: str
    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    path: tuple[str, ...]
    inverted: bool
    children: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Include:
    ref: Ref


_STANDALONE = frozenset("#^/!")


class _Missing:
    pass


_MISSING = _Missing()


@dataclass(frozen=True)
class Compiled:
    """A parsed template, ready to render many times."""

    source: str
    format: str
    refs: tuple[Ref, ...]
    variables: tuple[str, ...]
    nodes: tuple[Any, ...] = ()
    jinja: jinja2.Template | None = field(default=None, repr=False)

    def render(
        self, variables: Mapping[str, Any], includes: Mapping[Ref, Compiled] | None = None
    ) -> str:
        """The text, or BadRequest listing every missing variable."""
        if self.jinja is not None:
            return _render_jinja(self, variables, includes or {})
        out: list[str] = []
        missing: dict[str, None] = {}
        _render(self.nodes, [variables], out, missing, includes or {})
        if missing:
            raise missing_error(list(missing))
        return "".join(out)


def _parse_mustache(source: str, where: str) -> Compiled:
    root: list[Any] = []
    stack: list[tuple[str, tuple[str, ...], bool, int, list[Any]]] = []
    current = root
    refs: dict[Ref, None] = {}
    variables: dict[str, None] = {}
    pos = 0
    size = len(source)
    while True:
        start = source.find("{{", pos)
        if start < 0:
            if pos < size:
                current.append(source[pos:])
            break
        triple = source.startswith("{{{", start)
        close = source.find("}}}" if triple else "}}", start + 2)
        if close < 0:
            raise template_error(source, start, "unclosed tag: '{{' without '}}'", where)
        end = close + (3 if triple else 2)
        body = source[start + (3 if triple else 2) : close]
        sigil = "{" if triple else (body[:1] if body[:1] in "#^/!>&=" else "")
        text = body[len(sigil) :].strip() if sigil != "{" else body.strip()
        literal_end = start
        if sigil in _STANDALONE:
            line_start = source.rfind("\n", 0, start) + 1
            newline = source.find("\n", end)
            line_end = size if newline < 0 else newline + 1
            if (
                pos <= line_start
                and not source[line_start:start].strip(" \t")
                and not source[end:line_end].strip(" \t\r\n")
            ):
                literal_end, end = line_start, line_end
        if literal_end > pos:
            current.append(source[pos:literal_end])
        pos = end
        if sigil == "!":
            continue
        if sigil == "=":
            raise template_error(source, start, "delimiter changes are not supported", where)
        if sigil == ">":
            ref = Ref.parse(text)
            if ref is None:
                reason = f"{text!r} is not a prompt reference (name, name@label or name@3)"
                raise template_error(source, start, reason, where)
            refs[ref] = None
            current.append(Include(ref))
            continue
        if not text:
            raise template_error(source, start, "empty tag", where)
        if not _VAR.match(text):
            raise template_error(source, start, f"{text!r} is not a variable name", where)
        path = tuple(text.split(".")) if text != "." else (".",)
        if sigil in ("#", "^"):
            if not stack and text != ".":
                variables[path[0]] = None
            stack.append((text, path, sigil == "^", start, current))
            current = []
        elif sigil == "/":
            if not stack:
                raise template_error(source, start, f"closing tag {text!r} was never opened", where)
            name, opened_path, inverted, opened_at, parent = stack.pop()
            if name != text:
                line, column = position(source, opened_at)
                reason = (
                    f"closing tag {text!r} does not match {name!r} opened at line {line}, "
                    f"column {column}"
                )
                raise template_error(source, start, reason, where)
            parent.append(Section(name, opened_path, inverted, tuple(current)))
            current = parent
        else:
            if not stack and text != ".":
                variables[path[0]] = None
            current.append(Var(text, path))
    if stack:
        name, _, _, opened_at, _ = stack[-1]
        raise template_error(source, opened_at, f"section {name!r} is never closed", where)
    return Compiled(source, "mustache", tuple(refs), tuple(variables), tuple(root))


def _lookup(stack: list[Any], path: tuple[str, ...]) -> Any:
    head = path[0]
    if head == ".":
        return stack[-1]
    value: Any = _MISSING
    i = len(stack) - 1
    while i >= 0:
        frame = stack[i]
        # type() first: the JSON variables are plain dicts, and isinstance on an ABC is slow.
        if type(frame) is dict or isinstance(frame, Mapping):
            value = frame.get(head, _MISSING)
            if value is not _MISSING:
                break
        i -= 1
    if value is _MISSING or len(path) == 1:
        return value
    for part in path[1:]:
        if isinstance(value, Mapping):
            value = value.get(part, _MISSING)
            if value is _MISSING:
                return value
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def to_text(value: Any) -> str:
    """How a value is written into a prompt: strings as-is, other values as JSON."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _render(
    items: tuple[Any, ...],
    stack: list[Any],
    out: list[str],
    missing: dict[str, None],
    includes: Mapping[Ref, Compiled],
) -> None:
    append = out.append
    for node in items:
        kind = type(node)
        if kind is str:
            append(node)
        elif kind is Var:
            value = _lookup(stack, node.path)
            if value is _MISSING:
                missing[node.name] = None
            else:
                append(value if type(value) is str else to_text(value))
        elif kind is Section:
            value = _lookup(stack, node.path)
            if value is _MISSING:
                missing[node.name] = None
            elif node.inverted:
                if not value:
                    _render(node.children, stack, out, missing, includes)
            elif isinstance(value, list | tuple):
                for item in value:
                    stack.append(item)
                    _render(node.children, stack, out, missing, includes)
                    stack.pop()
            elif isinstance(value, Mapping):
                stack.append(value)
                _render(node.children, stack, out, missing, includes)
                stack.pop()
            elif value:
                _render(node.children, stack, out, missing, includes)
        else:
            included = includes[node.ref]
            if included.jinja is not None:
                append(_render_jinja(included, stack[0], includes))
            else:
                _render(included.nodes, stack, out, missing, includes)


# --- jinja2 ------------------------------------------------------------------------------------

_JINJA = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
)


def _parse_jinja(source: str, where: str) -> Compiled:
    try:
        tree = _JINJA.parse(source)
        template = _JINJA.from_string(tree)
    except jinja2.TemplateSyntaxError as exc:
        raise located_error(exc.lineno, None, exc.message or "syntax error", where) from None
    refs: dict[Ref, None] = {}
    for node in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        if not isinstance(node, nodes.Include):
            reason = "only {% include %} of another prompt is supported"
            raise located_error(node.lineno, None, reason, where)
        name = node.template.value if isinstance(node.template, nodes.Const) else None
        ref = Ref.parse(name) if isinstance(name, str) else None
        if ref is None:
            reason = "include needs a literal prompt reference such as 'name@production'"
            raise located_error(node.lineno, None, reason, where)
        refs[ref] = None
    found = sorted(meta.find_undeclared_variables(tree))
    return Compiled(source, "jinja2", tuple(refs), tuple(found), jinja=template)


def _render_jinja(
    compiled: Compiled, variables: Mapping[str, Any], includes: Mapping[Ref, Compiled]
) -> str:
    missing = [name for name in compiled.variables if name not in variables]
    if missing:
        raise missing_error(missing)
    template = compiled.jinja
    assert template is not None
    if compiled.refs:
        # Included prompts are resolved per render (labels move), so they get their own loader.
        sources = {str(ref): includes[ref].source for ref in _closure(compiled, includes)}
        env = _JINJA.overlay(loader=jinja2.DictLoader(sources))
        template = env.from_string(compiled.source)
    try:
        return template.render(dict(variables))
    except jinja2.UndefinedError as exc:
        raise BadRequest(f"missing variable: {exc.message}", code="missing_variables") from None
    except SecurityError as exc:
        raise BadRequest(f"template refused: {exc}", code="template_security") from None
    except jinja2.TemplateError as exc:
        raise BadRequest(f"template failed: {exc}", code="template_error") from None


def _closure(compiled: Compiled, includes: Mapping[Ref, Compiled]) -> list[Ref]:
    seen: dict[Ref, None] = {}
    todo = list(compiled.refs)
    while todo:
        ref = todo.pop()
        if ref not in seen:
            seen[ref] = None
            todo.extend(includes[ref].refs)
    return list(seen)


# --- entry points ------------------------------------------------------------------------------


def compile_text(
    source: str, template_format: str = "mustache", where: str = "template"
) -> Compiled:
    """Parse one text template, or raise BadRequest (``invalid_template``) with line/column."""
    if template_format == "jinja2":
        return _parse_jinja(source, where)
    if template_format != "mustache":
        raise BadRequest(
            f"unknown template_format {template_format!r}: expected mustache or jinja2",
            param="template_format",
        )
    return _parse_mustache(source, where)


ROLES = ("system", "developer", "user", "assistant", "tool")


@dataclass(frozen=True)
class Message:
    """One message of a chat prompt, or a placeholder for a list of messages."""

    role: str = ""
    content: Compiled | None = None
    placeholder: str = ""
    optional: bool = False
    extra: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class PromptTemplate:
    """A text or chat prompt, compiled."""

    type: str
    text: Compiled | None = None
    messages: tuple[Message, ...] = ()

    @property
    def refs(self) -> tuple[Ref, ...]:
        if self.text is not None:
            return self.text.refs
        out: dict[Ref, None] = {}
        for m in self.messages:
            if m.content is not None:
                out.update(dict.fromkeys(m.content.refs))
        return tuple(out)

    @property
    def variables(self) -> tuple[str, ...]:
        if self.text is not None:
            return self.text.variables
        out: dict[str, None] = {}
        for m in self.messages:
            if m.content is not None:
                out.update(dict.fromkeys(m.content.variables))
            else:
                out[m.placeholder] = None
        return tuple(out)

    def render_text(
        self, variables: Mapping[str, Any], includes: Mapping[Ref, Compiled] | None = None
    ) -> str:
        if self.text is None:
            raise BadRequest("this is a chat prompt: render it as messages", code="wrong_type")
        return self.text.render(variables, includes)

    def render_messages(
        self, variables: Mapping[str, Any], includes: Mapping[Ref, Compiled] | None = None
    ) -> list[dict[str, Any]]:
        """OpenAI-style messages. A text prompt becomes one ``user`` message."""
        if self.text is not None:
            return [{"role": "user", "content": self.text.render(variables, includes)}]
        out: list[dict[str, Any]] = []
        missing: dict[str, None] = {}
        for m in self.messages:
            if m.content is None:
                value = variables.get(m.placeholder)
                if value is None:
                    if not m.optional:
                        missing[m.placeholder] = None
                    continue
                out.extend(_placeholder_messages(m.placeholder, value))
                continue
            try:
                text = m.content.render(variables, includes)
            except BadRequest as exc:
                if exc.code != "missing_variables":
                    raise
                missing.update(
                    dict.fromkeys(e["path"].removeprefix("variables.") for e in exc.errors)
                )
                continue
            out.append({"role": m.role, "content": text, **dict(m.extra)})
        if missing:
            raise missing_error(list(missing))
        return out


def _placeholder_messages(name: str, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(
        isinstance(v, dict) and isinstance(v.get("role"), str) for v in value
    ):
        raise BadRequest(
            f"variable {name!r} fills a message placeholder: expected a list of messages "
            "with a 'role'",
            param=f"variables.{name}",
        )
    return [dict(v) for v in value]


def compile_prompt(
    prompt_type: str, template: Any, template_format: str = "mustache", where: str = "template"
) -> PromptTemplate:
    """Parse a text (a string) or chat (a list of messages) template, or raise BadRequest."""
    if prompt_type == "text":
        if not isinstance(template, str):
            raise BadRequest("a text prompt's template is a string", param=where)
        return PromptTemplate("text", text=compile_text(template, template_format, where))
    if prompt_type != "chat":
        raise BadRequest(
            f"unknown prompt type {prompt_type!r}: expected text or chat", param="type"
        )
    if not isinstance(template, list) or not template:
        raise BadRequest("a chat prompt's template is a non-empty list of messages", param=where)
    messages = []
    for i, raw in enumerate(template):
        at = f"{where}[{i}]"
        if not isinstance(raw, dict):
            raise BadRequest("a message is an object with role and content", param=at)
        if "placeholder" in raw:
            name = raw["placeholder"]
            unknown = set(raw) - {"placeholder", "optional"}
            if not isinstance(name, str) or not _VAR.match(name) or name == "." or unknown:
                raise BadRequest(
                    "a placeholder is {placeholder: <variable name>, optional: <bool>}", param=at
                )
            messages.append(Message(placeholder=name, optional=bool(raw.get("optional", False))))
            continue
        role, content = raw.get("role"), raw.get("content")
        if role not in ROLES:
            raise BadRequest(f"role must be one of {', '.join(ROLES)}", param=f"{at}.role")
        if not isinstance(content, str):
            raise BadRequest("content must be a string template", param=f"{at}.content")
        extra = tuple(sorted((k, v) for k, v in raw.items() if k not in ("role", "content")))
        compiled = compile_text(content, template_format, f"{at}.content")
        messages.append(Message(role=role, content=compiled, extra=extra))
    return PromptTemplate("chat", messages=tuple(messages))


__all__ = [
    "DEFAULT_REF_LABEL",
    "FORMATS",
    "Compiled",
    "Message",
    "PromptTemplate",
    "Ref",
    "compile_prompt",
    "compile_text",
    "missing_error",
    "to_text",
]
