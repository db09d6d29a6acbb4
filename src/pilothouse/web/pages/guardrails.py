"""Guardrails: the policies and checks in force, and a form to try a policy on a text.

Everything comes from the process's guardrails (:func:`pilothouse.guardrails.api.guardrails_of`),
the same object the gateway uses, so what the page shows is what calls get.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from pilothouse.errors import BadRequest
from pilothouse.web.ui import Page

WHERES = ("input", "context", "output")
MAX_TEXT = 100_000


def _guardrails(page: Page) -> Any:
    from pilothouse.guardrails.api import guardrails_of

    return guardrails_of(page.runtime)


def guardrails(page: Page) -> Response:
    """GET: policies and checks. POST: run a policy on the text in the form and show why."""
    page.require("read")
    guard = _guardrails(page)
    policies = [p.to_dict() for p in guard.policies.values()]
    checks = sorted(guard.checks.values(), key=lambda c: c.name)
    tried: dict[str, Any] | None = None
    form = {"text": "", "policy": "default", "where": "input"}
    if page.is_post:
        form = {k: page.form.get(k, form[k]) for k in form}
        if len(form["text"]) > MAX_TEXT:
            raise BadRequest(f"the text is longer than {MAX_TEXT} characters", param="text")
        if form["where"] not in WHERES:
            raise BadRequest("where must be input, context or output", param="where")
        from pilothouse.guardrails.rewrite import Vault

        decision = guard.check(form["text"], form["policy"], form["where"], Vault())
        tried = decision.public(include_text=not decision.blocked)
    return page.render(
        "guardrails.html",
        policies=policies,
        checks=checks,
        wheres=WHERES,
        form=form,
        tried=tried,
    )
