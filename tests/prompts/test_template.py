"""The template engine: strict mustache-style rendering, errors with positions, Jinja2 sandbox."""

from __future__ import annotations

import pytest

from pilothouse.errors import BadRequest
from pilothouse.prompts.template import Ref, compile_prompt, compile_text


def render(source: str, **variables: object) -> str:
    return compile_text(source).render(variables)


def test_variables_and_values():
    assert render("Hi {{ name }}!", name="Ada") == "Hi Ada!"
    assert render("{{a.b.c}}", a={"b": {"c": 1}}) == "1"
    assert render("{{xs.1}}", xs=["a", "b"]) == "b"
    assert render("{{d}} {{n}} {{t}} {{f}}", d={"k": [1]}, n=None, t=True, f=2.5) == (
        '{"k": [1]}  true 2.5'
    )
    # No escaping: prompts are not HTML.
    assert render("{{x}} {{{x}}} {{&x}}", x="<a & b>") == "<a & b> <a & b> <a & b>"
    # No code: a tag is a name, never an expression.
    with pytest.raises(BadRequest) as info:
        compile_text("{{ __import__('os') }}")
    assert info.value.code == "invalid_template"


def test_sections_lists_and_standalone_lines():
    source = (
        "Items:\n{{#items}}\n- {{name}} ({{qty}})\n{{/items}}\n{{^items}}\nnone\n{{/items}}\nend"
    )
    assert render(source, items=[{"name": "a", "qty": 1}, {"name": "b", "qty": 2}]) == (
        "Items:\n- a (1)\n- b (2)\nend"
    )
    assert render(source, items=[]) == "Items:\nnone\nend"
    assert render("{{#flag}}yes{{/flag}}{{^flag}}no{{/flag}}", flag=False) == "no"
    assert render("{{#user}}{{name}}{{/user}}", user={"name": "Ada"}) == "Ada"
    assert render("{{#xs}}[{{.}}]{{/xs}}", xs=[1, 2]) == "[1][2]"
    # An outer name stays visible inside a section.
    assert render("{{#xs}}{{sep}}{{.}}{{/xs}}", xs=["a"], sep=">") == ">a"
    assert render("a {{! note }}b") == "a b"


def test_missing_variables_are_all_listed_once():
    template = compile_text("{{a}} {{b.c}} {{a}} {{#items}}{{x}}{{/items}} {{#gone}}{{/gone}}")
    with pytest.raises(BadRequest) as info:
        template.render({"b": {}, "items": [{}]})
    assert info.value.code == "missing_variables"
    assert info.value.detail == "missing variables: a, b.c, x, gone"
    assert [e["path"] for e in info.value.errors] == [
        "variables.a",
        "variables.b.c",
        "variables.x",
        "variables.gone",
    ]


@pytest.mark.parametrize(
    ("source", "line", "column", "reason"),
    [
        ("abc {{name", 1, 5, "unclosed tag"),
        ("a\nb\n  {{#s}}x", 3, 3, "section 's' is never closed"),
        ("{{#a}}\n{{/b}}", 2, 1, "does not match 'a' opened at line 1, column 1"),
        ("x {{/a}}", 1, 3, "never opened"),
        ("{{ }}", 1, 1, "empty tag"),
        ("{{a b}}", 1, 1, "is not a variable name"),
        ("{{=<% %>=}}", 1, 1, "delimiter changes"),
        ("{{> bad name}}", 1, 1, "not a prompt reference"),
    ],
)
def test_syntax_errors_have_line_and_column(source: str, line: int, column: int, reason: str):
    with pytest.raises(BadRequest) as info:
        compile_text(source, where="template")
    error = info.value.errors[0]
    assert (error["line"], error["column"]) == (line, column)
    assert reason in error["reason"]
    assert info.value.status == 400


def test_references():
    assert Ref.parse("a/b") == Ref("a/b", "production")
    assert Ref.parse("a/b@staging") == Ref("a/b", "staging")
    assert Ref.parse("a/b@12") == Ref("a/b", None, 12)
    assert Ref.parse("a b") is None
    compiled = compile_text("{{> x@3}} and {{> y}}")
    assert compiled.refs == (Ref("x", None, 3), Ref("y", "production"))
    included = {
        Ref("x", None, 3): compile_text("X={{v}}"),
        Ref("y", "production"): compile_text("Y"),
    }
    assert compiled.render({"v": 1}, included) == "X=1 and Y"


def test_chat_prompts_and_placeholders():
    template = compile_prompt(
        "chat",
        [
            {"role": "system", "content": "Be {{tone}}."},
            {"placeholder": "history"},
            {"placeholder": "examples", "optional": True},
            {"role": "user", "content": "{{question}}", "name": "u1"},
        ],
    )
    assert template.variables == ("tone", "history", "examples", "question")
    history = [{"role": "user", "content": "hi"}]
    assert template.render_messages({"tone": "brief", "history": history, "question": "?"}) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "user", "content": "?", "name": "u1"},
    ]
    with pytest.raises(BadRequest) as info:
        template.render_messages({})
    assert info.value.detail == "missing variables: tone, history, question"
    with pytest.raises(BadRequest) as bad:
        template.render_messages({"tone": "", "question": "", "history": "not a list"})
    assert bad.value.param == "variables.history"
    for wrong in ([], "text", [{"role": "robot", "content": ""}], [{"role": "user"}]):
        with pytest.raises(BadRequest):
            compile_prompt("chat", wrong)


def test_jinja2_is_sandboxed_and_strict():
    template = compile_text("{% for x in items %}{{ x | upper }}{% endfor %} {{ n + 1 }}", "jinja2")
    assert template.variables == ("items", "n")
    assert template.render({"items": ["a", "b"], "n": 1}) == "AB 2"
    with pytest.raises(BadRequest) as missing:
        template.render({})
    assert missing.value.detail == "missing variables: items, n"
    unsafe = compile_text("{{ x.__class__.__mro__ }}", "jinja2")
    with pytest.raises(BadRequest) as refused:
        unsafe.render({"x": 1})
    assert refused.value.code in ("template_security", "missing_variables")
    mutate = compile_text("{{ xs.append(1) }}", "jinja2")
    with pytest.raises(BadRequest) as immutable:
        mutate.render({"xs": []})
    assert immutable.value.code == "template_security"
    with pytest.raises(BadRequest) as syntax:
        compile_text("ok\n{% for %}", "jinja2")
    assert syntax.value.errors[0]["line"] == 2
    included = compile_text('A {% include "tone@production" %}', "jinja2")
    assert included.refs == (Ref("tone", "production"),)
    assert included.render(
        {"m": "x"}, {Ref("tone", "production"): compile_text("{{ m }}!", "jinja2")}
    ) == ("A x!")
    with pytest.raises(BadRequest):
        compile_text("{% include name %}", "jinja2")
