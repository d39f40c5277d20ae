"""Alembic environment: migrations see only the table definitions, never the service."""

from alembic import context
from sqlalchemy import create_engine

from service.adapters.sql.tables import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url") or "sqlite:///" + context.get_x_argument(as_dictionary=True).get("db", "newsclust.sqlite")
connection = config.attributes.get("connection")


def _run(conn) -> None:
    context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
