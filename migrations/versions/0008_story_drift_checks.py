"""Story drift checks: the content figures behind each id kept (or split off) when a story was mostly new documents

Revision ID: 0008_story_drift_checks
Revises: 0007
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

revision = "0008_story_drift_checks"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "story_drift_checks",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("story_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("old_members", sa.Integer(), nullable=False),
        sa.Column("new_members", sa.Integer(), nullable=False),
        sa.Column("cosine", sa.Float(), nullable=False),
        sa.Column("min_cosine", sa.Float(), nullable=False),
        sa.Column("split_story_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "story_id"),
    )


def downgrade() -> None:
    op.drop_table("story_drift_checks")
