"""Storage: tables, migrations and queries. The only package that speaks SQL.

One schema runs unchanged on SQLite (embedded) and PostgreSQL; every dialect difference
lives in this package (see :mod:`pilothouse.store.engine` and :mod:`pilothouse.store.types`).
"""

from pilothouse.store.engine import Database

__all__ = ["Database"]
