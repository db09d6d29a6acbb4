"""Imports every table module so that ``metadata`` holds the whole schema.

Each product area keeps its tables and queries in its own module here and its migrations on its
own Alembic branch (``branch_labels``), so areas evolve without merge conflicts.
"""

from pilothouse.store import annotations, evals, gateway, identity, jobs, prompts, traces
from pilothouse.store.metadata import metadata

__all__ = ["annotations", "evals", "gateway", "identity", "jobs", "metadata", "prompts", "traces"]
