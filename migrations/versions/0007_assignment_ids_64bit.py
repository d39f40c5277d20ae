"""assignments.id as a 64-bit integer on PostgreSQL (SQLite's INTEGER primary key is 64-bit already)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa
from pathlib import Path

from service.adapters.sql.dialect import views_of

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


# PostgreSQL will not change a column's type under a view: these read assignments.id and are made again
DEPENDENT_VIEWS = ("document_current", "document_history")


def upgrade() -> None:
    _retype(sa.Integer(), sa.BigInteger())


def downgrade() -> None:
    _retype(sa.BigInteger(), sa.Integer())


def _retype(old, new) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in DEPENDENT_VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.alter_column("assignments", "id", type_=new, existing_type=old)
    # the id's sequence has a type of its own: left as integer, it would still stop at 2^31
    op.execute(f"ALTER SEQUENCE IF EXISTS assignments_id_seq AS {'bigint' if isinstance(new, sa.BigInteger) else 'integer'}")
    views = views_of(Path(__file__).with_name("0004_stories_and_topics.py"), "postgresql")
    for name in DEPENDENT_VIEWS:
        op.execute(f"CREATE VIEW {name} AS {views[name]}")

