"""The few SQL spellings SQLite and PostgreSQL do not share, for the migrations' views and the history's inserts.

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


def param_mark(dialect) -> str:
    """A positional parameter in the driver's own spelling, for SQL sent past SQLAlchemy (exec_driver_sql, a raw cursor)."""
    mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(dialect.paramstyle)
    if mark is None:
        raise NotImplementedError(f"driver-level SQL: paramstyle {dialect.paramstyle}")
    return mark


def bind_processor(dialect, column):
    """The conversion SQLAlchemy applies to a value bound to `column` (SQLite keeps times as text in one fixed format), or None."""
    return column.type._cached_bind_processor(dialect)


def bulk_insert(conn, table: Table, columns: dict[str, list], same: dict | None = None, batch: int = 50_000) -> None:
    """Many rows as the driver's own executemany of positional tuples: `columns` one list per column,
    `same` the columns that hold one value in every row.

    SQLAlchemy's insert() with a list of dicts builds and processes one parameter dict per row,
    which was most of a 100k-document rebuild's commit; here each column's bind processor (the
    dialect's own conversion, e.g. SQLite's datetime text) runs once per value, once for a `same` one.
    """
    same = same or {}
    names = [*columns, *same]
    n = len(next(iter(columns.values()))) if columns else 0
    if n == 0:
        return
    dialect = conn.dialect
    quote = dialect.identifier_preparer.quote
    mark = param_mark(dialect)
    sql = f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in names)}) VALUES ({', '.join([mark] * len(names))})"

    def processed(name: str, values: list) -> list:
        f = bind_processor(dialect, table.c[name])
        return values if f is None else [None if v is None else f(v) for v in values]

    data = [processed(c, v) for c, v in columns.items()] + [processed(c, [v])[0:1] * n for c, v in same.items()]
    rows = list(zip(*data))
    for s in range(0, n, batch):
        conn.exec_driver_sql(sql, rows[s : s + batch])


def views_of(migration: Path, dialect: str) -> dict[str, str]:
    """An earlier migration's views in this dialect, for a later one that must drop and make them again
    (migration files start with a digit, so they cannot be imported by name)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"views_{migration.stem}", migration)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.views(dialect)
