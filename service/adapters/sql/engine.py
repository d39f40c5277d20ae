"""The SQL history's engine and the helpers every table module shares: SQLite (a file, WAL) or PostgreSQL.

The history is split by what it serves, one module per port (service/ports.py): ledger.py (files and
documents), runs.py (rebuilds and placements), reads.py (what people and the report read), alerts.py,
coordination.py (claims and leases between workers); tables.py holds the schema, migrations/ its changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError

from ...config import Settings
from ...domain import unix_seconds
from .dialect import bind_processor, param_mark

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"
CHUNK = 900  # SQLite's bound-parameter limit, with room to spare


def make_engine(target: Path | str, busy_timeout_s: float = Settings.db_busy_timeout_s) -> Engine:
    """A SQLite file (a path, or a sqlite:/// URL) or a PostgreSQL server (postgresql+psycopg://...).

    SQLite: WAL, so readers never wait on the writer; past busy_timeout_s of waiting for another
    writer a write fails as 'database is locked', which the service treats as a transient fault.
    PostgreSQL: connections checked before use, so a restarted server is a retry, not a crash.
    """
    url = target if isinstance(target, str) and "://" in target else f"sqlite:///{target}"
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": int(max(1, busy_timeout_s))}
                             if url.startswith("postgresql") else {})
    engine = create_engine(url, connect_args={"timeout": busy_timeout_s})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):  # noqa: ANN001
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cur.close()

    return engine


def upgrade(engine: Engine) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def driver_rows(c, sql: str, params: Sequence = (), batch: int = 50_000):
    """Plain tuples in batches straight from the driver's cursor, for reads of many rows where building
    SQLAlchemy rows cost more than the query. No type conversion is applied (a SQLite time comes back as
    its text): bind values through bound. `{p}` in sql marks a parameter, in the driver's own spelling."""
    sql, params = sql.replace("{p}", param_mark(c.dialect)), tuple(params)
    cur = c.connection.cursor()
    try:
        cur.execute(sql, params)
        while rows := cur.fetchmany(batch):
            yield rows
    except c.dialect.loaded_dbapi.Error as exc:  # as SQLAlchemy would raise it: faults.py tells a locked or lost database by it
        raise DBAPIError.instance(sql, params, exc, c.dialect.loaded_dbapi.Error, dialect=c.dialect) from exc
    finally:
        cur.close()


def bound(c, column, value):
    """A value as SQLAlchemy would bind it for this column (SQLite keeps times as text in one fixed format)."""
    process = bind_processor(c.dialect, column)
    return value if process is None or value is None else process(value)


def unix_all(values) -> np.ndarray:
    """unix_seconds over many values at once: SQLite's time texts parsed by numpy in one pass, datetimes one by one."""
    if values and all(isinstance(v, str) for v in values):
        try:
            return np.array(values, dtype="datetime64[us]").astype(np.int64) / 1e6
        except ValueError:
            pass
    return np.fromiter((unix_seconds(v) for v in values), np.float64, count=len(values))

