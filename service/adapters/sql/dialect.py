"""The few SQL spellings SQLite and PostgreSQL do not share, for the migrations' views and the repository's inserts.

One schema, one set of views: the differences are spelled here, not forked into two schemas.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite


def json_elements(dialect: str, column: str, alias: str) -> str:
    """A FROM item with one row per element of a JSON array held in a text column, as `alias.value` (text)."""
    if dialect == "postgresql":
        return f"json_array_elements_text({column}::json) AS {alias}(value)"
    return f"json_each({column}) {alias}"


def json_first(dialect: str, column: str) -> str:
    """The first element of a JSON array held in a text column, as text."""
    if dialect == "postgresql":
        return f"({column}::json->>0)"
    return f"json_extract({column}, '$[0]')"


def concat_agg(dialect: str, expr: str, separator: str) -> str:
    if dialect == "postgresql":
        return f"string_agg({expr}, '{separator}')"
    return f"group_concat({expr}, '{separator}')"


def insert_for(dialect: str, table: Table):
    """An INSERT that knows ON CONFLICT (both dialects have it, each in its own SQLAlchemy module)."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def views_of(migration: Path, dialect: str) -> dict[str, str]:
    """An earlier migration's views in this dialect, for a later one that must drop and make them again
    (migration files start with a digit, so they cannot be imported by name)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"views_{migration.stem}", migration)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.views(dialect)
