"""DirectHook: a gateway hook called without pluggy's machinery, with pluggy's results."""

from __future__ import annotations

from collections.abc import Generator
from types import SimpleNamespace
from typing import Any

import pluggy

from pilothouse import hookimpl
from pilothouse.gateway.app import DirectHook
from pilothouse.plugins import make_plugin_manager


def _plugin(
    name: str, answer: Any, tryfirst: bool = False, trylast: bool = False
) -> SimpleNamespace:
    @hookimpl(tryfirst=tryfirst, trylast=trylast)
    def gateway_request(call: Any) -> Any:
        call.append(name)
        return answer

    return SimpleNamespace(gateway_request=gateway_request)


def _manager() -> pluggy.PluginManager:
    pm = make_plugin_manager(load_entry_points=False)
    for name in [n for n, p in pm.list_name_plugin() if hasattr(p, "gateway_request")]:
        pm.unregister(name=name)  # only this test's implementations
    return pm


def test_results_and_order_are_pluggys_and_new_plugins_are_seen():
    pm = _manager()
    pm.register(_plugin("first", 1), name="first")
    pm.register(_plugin("last", None, trylast=True), name="last")
    pm.register(_plugin("second", 2), name="second")
    direct = DirectHook(pm.hook.gateway_request)
    seen_direct: list[str] = []
    seen_pluggy: list[str] = []
    assert direct(call=seen_direct) == pm.hook.gateway_request(call=seen_pluggy)
    assert seen_direct == seen_pluggy == ["second", "first", "last"]
    pm.register(_plugin("late", 3, tryfirst=True), name="late")
    seen_direct.clear()
    assert direct(call=seen_direct) == [3, 2, 1]  # None results are left out
    assert seen_direct == ["late", "second", "first", "last"]


def test_a_hook_with_a_wrapper_goes_through_pluggy():
    pm = _manager()
    pm.register(_plugin("plain", 1), name="plain")

    @hookimpl(wrapper=True)
    def gateway_request(call: Any) -> Generator[None, Any, Any]:
        call.append("wrapper in")
        results = yield
        return [*results, 99]

    pm.register(SimpleNamespace(gateway_request=gateway_request), name="wrapper")
    seen: list[str] = []
    assert DirectHook(pm.hook.gateway_request)(call=seen) == [1, 99]
    assert seen == ["wrapper in", "plain"]
