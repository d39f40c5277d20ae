"""Story drift checks: the content figures behind each id kept (or split off) when a story was mostly new documents;
cluster_life's events readable ("born from 14", "grew 27->205", not "born:[]>[]")

Revision ID: 0008_story_drift_checks
Revises: 0007
Create Date: 2026-12-04
"""
from pathlib import Path

from alembic import op
import sqlalchemy as sa

from service.adapters.sql.dialect import concat_agg, views_of

revision = "0008_story_drift_checks"
down_revision = "0007"
branch_labels = None
depends_on = None


# one event as people read it: kind, then where from / where to, then the size change; the ids lists are JSON text
_LIST = "REPLACE(REPLACE({col}, '[', ''), ']', '')"
READABLE_EVENT = (
    "e.kind"
    " || CASE WHEN e.kind = 'moved' THEN ' from topic ' || " + _LIST.format(col="e.parents") + " || ' to topic ' || " + _LIST.format(col="e.children")
    + " ELSE (CASE WHEN e.parents <> '[]' THEN ' from ' || " + _LIST.format(col="e.parents") + " ELSE '' END)"
    " || (CASE WHEN e.children <> '[]' THEN ' into ' || " + _LIST.format(col="e.children") + " ELSE '' END) END"
    " || CASE WHEN e.kind IN ('grew', 'shrank') THEN ' ' || CAST(e.size_before AS TEXT) || '->' || CAST(e.size_after AS TEXT) ELSE '' END"
)


def _cluster_life(dialect: str) -> str:
    return f"""
        SELECT s.cluster_id, s.cluster_id AS story_id, s.run_id, r.finished_at AS run_at, s.size, s.name, s.keywords, s.representatives,
               s.topic_id,
               (SELECT {concat_agg(dialect, READABLE_EVENT, "; ")}
                  FROM cluster_events e WHERE e.level = 'story' AND e.cluster_id = s.cluster_id AND e.run_id = s.run_id) AS events
        FROM cluster_snapshots s JOIN runs r ON r.id = s.run_id
    """


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP VIEW IF EXISTS cluster_life")
    op.execute(f"CREATE VIEW cluster_life AS {_cluster_life(dialect)}")
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
    op.execute("DROP VIEW IF EXISTS cluster_life")
    views = views_of(Path(__file__).with_name("0004_stories_and_topics.py"), op.get_bind().dialect.name)
    op.execute(f"CREATE VIEW cluster_life AS {views['cluster_life']}")
