"""The docs cover the product: generated pages are current, and every setting, command, route
and hook appears somewhere in docs/*.md."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from starlette.routing import Mount

from pilothouse.settings import registry

ROOT = Path(__file__).resolve().parent.parent


def _gen_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_docs"] = module
    spec.loader.exec_module(module)
    return module


gen_docs = _gen_docs()


@pytest.fixture(scope="module")
def docs_text() -> str:
    return "\n".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))


def test_generated_docs_are_current():
    stale = gen_docs.stale_pages(write=False)
    assert not stale, f"generated docs are stale ({', '.join(stale)}): run scripts/gen_docs.py"


def _missing(items: Iterable[str], text: str) -> list[str]:
    return sorted({item for item in items if item not in text})


def test_every_setting_is_documented(docs_text: str):
    assert _missing((info.env for info in registry()), docs_text) == []


def test_every_command_is_documented(docs_text: str):
    paths = gen_docs.command_paths()
    assert "pilothouse db upgrade" in paths and "pilothouse worker" in paths
    assert _missing((f"`{p}`" for p in paths), docs_text) == []


def _route_paths(routes: Iterable[Any], prefix: str = "") -> Iterable[str]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's include_router
        if included is not None:
            yield from _route_paths(included.routes, prefix + route.include_context.prefix)
            continue
        path = prefix + getattr(route, "path", "")
        children = getattr(route, "routes", None) if isinstance(route, Mount) else None
        if children:
            yield from _route_paths(children, path)
        elif path:
            # Starlette convertors ({id:int}) are written without their type in the docs.
            yield re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def app_route_paths() -> list[str]:
    """Routes of the FastAPI app, plus paths middleware serves ahead of it (hot paths)."""
    with gen_docs.whole_app() as app:
        *wrappers, fastapi_app = gen_docs.layers(app)
        paths = set(_route_paths(fastapi_app.router.routes))
        for wrapper in wrappers:
            paths.update(vars(wrapper).get("paths", {}))
        return sorted(paths)


def test_every_route_is_documented(docs_text: str):
    paths = app_route_paths()
    assert {"/healthz", "/readyz", "/api/projects", "/api/jobs/{job_id}"} <= set(paths)
    missing = [p for p in paths if p not in docs_text and p not in ("/api/docs",)]
    assert missing == [], "routes missing from docs/*.md:\n" + "\n".join(missing)


def test_every_hook_is_documented(docs_text: str):
    names = [spec.__name__ for spec in gen_docs.hookspecs()]
    assert {"register_jobs", "register_commands", "asgi_routes", "startup"} <= set(names)
    assert _missing((f"`{n}`" for n in names), docs_text) == []
    for spec in gen_docs.hookspecs():
        assert spec.__doc__, f"hook {spec.__name__} has no docstring"


def test_readme_gives_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e .\npilothouse serve" in readme
    assert "./scripts/test" in readme
    assert (ROOT / "scripts" / "test").stat().st_mode & 0o111


def test_index_links_every_page():
    index = (ROOT / "docs" / "index.md").read_text()
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md") if p.name != "index.md")
    assert [p for p in pages if f"]({p})" not in index] == []
