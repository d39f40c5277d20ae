"""Alerts: new and surging stories, one row per story and state change

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("story_id", sa.Integer(), nullable=False),
        sa.Column("topic_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("recent", sa.Integer(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("stream_time", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index("ix_alerts_story_kind", ["story_id", "kind"], unique=False)
    op.create_table(
        "story_alert_state",
        sa.Column("story_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("surging", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("announced_new", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("story_id"),
    )
    op.execute("""
        CREATE VIEW alert_feed AS
        SELECT a.id, a.at, a.kind, a.story_id, a.title, a.size, a.recent, a.topic_id, t.name AS topic_name, a.run_id, a.stream_time, a.details
        FROM alerts a
        LEFT JOIN topic_snapshots t ON t.topic_id = a.topic_id AND t.run_id = (SELECT MAX(id) FROM runs WHERE status = 'done')
    """)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS alert_feed")
    op.drop_table("story_alert_state")
    op.drop_table("alerts")
