"""runs.rebuild_rows_from: the smallest assignments id among the rebuild rows a run holds, so reading "each
document's latest rebuild row at or before run R" starts there instead of at the first row ever written

Revision ID: 0011_rebuild_rows_from
Revises: 0008_changed_assignments
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = "0011_rebuild_rows_from"
down_revision = "0008_changed_assignments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("rebuild_rows_from", sa.BigInteger(), nullable=True))  # NULL (older runs): read from the start


def downgrade() -> None:
    # plain ALTER (SQLite 3.35+, PostgreSQL): a batch copy of runs would break the views that read it
    op.execute("ALTER TABLE runs DROP COLUMN rebuild_rows_from")
