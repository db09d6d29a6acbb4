"""The plugin manager: built-in plugins first, then installed ``pilothouse`` entry points."""

from __future__ import annotations

import importlib

import pluggy

from pilothouse import hookspecs

#: Built-in features, loaded through the same hooks as third-party plugins.
DEFAULT_PLUGINS = (
    "pilothouse.jobs.builtin",
    "pilothouse.web.plugin",
    "pilothouse.gateway.plugin",
    "pilothouse.gateway.metrics_plugin",
    "pilothouse.prompts.plugin",
    "pilothouse.tracing.plugin",
    "pilothouse.guardrails.plugin",
    "pilothouse.evals.builtin",
    "pilothouse.evals.plugin",
)


def make_plugin_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("pilothouse")
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if load_entry_points:
        pm.load_setuptools_entrypoints("pilothouse")
    return pm


pm = make_plugin_manager()
