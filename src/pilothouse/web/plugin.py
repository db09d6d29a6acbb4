"""The built-in web UI plugin: adds the console's routes through the ``asgi_routes`` hook.

The routes are explicit paths (``/login``, ``/projects/{id}/...``, ``/static``), not a
catch-all mount at ``/``, and the hook runs last (``trylast``), so ``/api``, ``/v1``,
``/healthz`` and other plugins' routes keep working whatever their order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from pilothouse.hookspecs import hookimpl
from pilothouse.web.pages import (
    auth,
    evals,
    guardrails,
    home,
    playground,
    prompts,
    review,
    settings,
    traces,
)
from pilothouse.web.ui import HERE, Handler, WebUI

if TYPE_CHECKING:
    from pilothouse.runtime import Runtime

GET, POST, BOTH = ["GET"], ["POST"], ["GET", "POST"]
P = "/projects/{project_id:int}"

#: (path, handler, methods, needs a signed-in user)
PAGES: list[tuple[str, Handler, list[str], bool]] = [
    ("/", auth.start, GET, False),
    ("/login", auth.login, BOTH, False),
    ("/logout", auth.logout, POST, False),
    ("/switch", auth.switch, GET, True),
    (P, home.home, GET, True),
    (P + "/traces", traces.trace_list, GET, True),
    (P + "/traces/{trace_id}", traces.trace_detail, GET, True),
    (P + "/traces/{trace_id}/scores", traces.add_score, POST, True),
    (P + "/sessions/{session_id}", traces.session, GET, True),
    (P + "/prompts", prompts.prompt_list, GET, True),
    # Specific prompt routes first: names may contain "/"; "diff", "labels", "playground" are
    # reserved.
    (P + "/prompts/{name:path}/diff", prompts.prompt_diff, GET, True),
    (P + "/prompts/{name:path}/labels/move", prompts.move_label, BOTH, True),
    (P + "/prompts/{name:path}/labels/rollback", prompts.rollback_label, BOTH, True),
    (P + "/prompts/{name:path}/playground/stream", playground.playground_stream, POST, True),
    (P + "/prompts/{name:path}/playground", playground.playground, BOTH, True),
    (P + "/prompts/{name:path}", prompts.prompt_detail, GET, True),
    (P + "/datasets", evals.datasets, GET, True),
    (P + "/datasets/{name}", evals.dataset, GET, True),
    (P + "/experiments/compare", evals.compare, GET, True),
    (P + "/experiments/{experiment_id:int}", evals.experiment, GET, True),
    (P + "/annotations", review.queues, BOTH, True),
    (P + "/annotations/items", review.add_items, POST, True),
    (P + "/annotations/{queue_id:int}", review.queue, GET, True),
    (P + "/annotations/{queue_id:int}/next", review.next_item, POST, True),
    (P + "/annotations/{queue_id:int}/items/{item_id:int}", review.item, BOTH, True),
    (P + "/guardrails", guardrails.guardrails, BOTH, True),
    (P + "/guardrails/decisions", guardrails.decisions, GET, True),
    (P + "/settings", settings.keys, GET, True),
    (P + "/settings/keys", settings.keys, GET, True),
    (P + "/settings/keys", settings.create_key, POST, True),
    (P + "/settings/keys/{key_id:int}/revoke", settings.revoke_key, BOTH, True),
    (P + "/settings/members", settings.members, GET, True),
    (P + "/settings/members", settings.add_member, POST, True),
    (P + "/settings/members/{user_id:int}", settings.change_member, POST, True),
    (P + "/settings/models", settings.models, GET, True),
]

#: The project navigation: (label, path under /projects/{id}).
NAV: list[tuple[str, str]] = [
    ("Home", ""),
    ("Traces", "/traces"),
    ("Prompts", "/prompts"),
    ("Evaluations", "/datasets"),
    ("Review", "/annotations"),
    ("Guardrails", "/guardrails"),
    ("Settings", "/settings"),
]


def build_routes(runtime: Runtime) -> list[BaseRoute]:
    ui = WebUI(runtime)
    ui.nav = list(NAV)
    runtime.state["web"] = ui
    routes: list[BaseRoute] = [
        Route(path, ui.view(handler, login=login), methods=methods)
        for path, handler, methods, login in PAGES
    ]
    routes.append(Mount("/static", StaticFiles(directory=HERE / "static"), name="static"))
    return routes


@hookimpl(trylast=True)
def asgi_routes(runtime: Runtime) -> list[Any]:
    return list(build_routes(runtime))


@hookimpl
def register_commands(cli: click.Group) -> None:
    from pilothouse.web.demo import demo

    cli.add_command(demo)
