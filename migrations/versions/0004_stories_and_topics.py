"""Two levels: topics (tables, snapshots, ids), each story's topic per run, topic per assignment, events per level; views for both

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa
from pathlib import Path

from service.adapters.sql.dialect import concat_agg, json_elements, json_first, views_of

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

LATEST_RUN = "(SELECT MAX(id) FROM runs WHERE status = 'done')"

def views(dialect: str = "sqlite") -> dict[str, str]:
    """The views in this database's spelling (SQLite or PostgreSQL)."""
    parts = {"agg": concat_agg(dialect, "e.kind || ':' || e.parents || '>' || e.children", "; "),
             "parents": json_elements(dialect, "e.parents", "p"), "children": json_elements(dialect, "e.children", "c"),
             "first_parent": json_first(dialect, "e.parents"), "first_child": json_first(dialect, "e.children"), "latest_run": LATEST_RUN}
    return {k: v.format(**parts) for k, v in _VIEWS.items()}


_VIEWS = {
    # the latest placement of every document at both levels (rebuild or predict); never placed: NULLs
    "document_current": """
        SELECT d.id AS document_id, d.key, d.title, d.published_at, d.ingested_at,
               a.cluster_id, a.cluster_id AS story_id, a.topic_id, a.probability, a.outlier_score, a.assigned_by, a.run_id
        FROM documents d
        LEFT JOIN assignments a ON a.id = (SELECT MAX(a2.id) FROM assignments a2 WHERE a2.document_id = d.id)
    """,
    # which story and topic a headline belonged to over time, with their names then
    "document_history": """
        SELECT a.document_id, d.title, a.run_id, r.finished_at AS run_at, a.assigned_at, a.assigned_by,
               a.cluster_id, a.cluster_id AS story_id, s.name AS cluster_name, s.name AS story_name,
               a.topic_id, t.name AS topic_name, a.probability, a.outlier_score
        FROM assignments a
        JOIN documents d ON d.id = a.document_id
        JOIN runs r ON r.id = a.run_id AND r.status = 'done'
        LEFT JOIN cluster_snapshots s ON s.run_id = a.run_id AND s.cluster_id = a.cluster_id
        LEFT JOIN topic_snapshots t ON t.run_id = a.run_id AND t.topic_id = a.topic_id
    """,
    # the life of a story: one row per run it was seen in, its topic then, plus its lineage events
    "cluster_life": """
        SELECT s.cluster_id, s.cluster_id AS story_id, s.run_id, r.finished_at AS run_at, s.size, s.name, s.keywords, s.representatives,
               s.topic_id,
               (SELECT {agg}
                  FROM cluster_events e WHERE e.level = 'story' AND e.cluster_id = s.cluster_id AND e.run_id = s.run_id) AS events
        FROM cluster_snapshots s JOIN runs r ON r.id = s.run_id
    """,
    # every parent -> child link of stories recorded by a split, merge or birth
    "cluster_lineage": """
        SELECT e.run_id, e.at, e.kind, CAST(p.value AS INTEGER) AS parent_id, e.cluster_id AS child_id
        FROM cluster_events e, {parents} WHERE e.level = 'story' AND e.kind IN ('born', 'merged')
        UNION ALL
        SELECT e.run_id, e.at, e.kind, e.cluster_id AS parent_id, CAST(c.value AS INTEGER) AS child_id
        FROM cluster_events e, {children} WHERE e.level = 'story' AND e.kind IN ('split', 'merged')
    """,
    # the stories of the latest rebuild, with their topic
    "story_current": """
        SELECT s.cluster_id AS story_id, s.name AS title, s.keywords, s.size, s.topic_id, t.name AS topic_name,
               c.first_seen, c.status, s.run_id
        FROM cluster_snapshots s
        JOIN clusters c ON c.id = s.cluster_id
        LEFT JOIN topic_snapshots t ON t.run_id = s.run_id AND t.topic_id = s.topic_id
        WHERE s.run_id = {latest_run}
    """,
    # the topics of the latest rebuild
    "topic_current": """
        SELECT t.topic_id, t.name, t.keywords, t.size, t.n_stories, p.first_seen, p.status, t.run_id
        FROM topic_snapshots t JOIN topics p ON p.id = t.topic_id
        WHERE t.run_id = {latest_run}
    """,
    # the life of a topic: size, stories and name in each run, plus its events
    "topic_life": """
        SELECT t.topic_id, t.run_id, r.finished_at AS run_at, t.size, t.n_stories, t.name, t.keywords,
               (SELECT {agg}
                  FROM cluster_events e WHERE e.level = 'topic' AND e.cluster_id = t.topic_id AND e.run_id = t.run_id) AS events
        FROM topic_snapshots t JOIN runs r ON r.id = t.run_id
    """,
    # stories that changed topic: from which to which, in which run
    "story_moves": """
        SELECT e.run_id, e.at, e.cluster_id AS story_id, CAST({first_parent} AS INTEGER) AS from_topic_id,
               CAST({first_child} AS INTEGER) AS to_topic_id
        FROM cluster_events e WHERE e.level = 'story' AND e.kind = 'moved'
    """,
}
REPLACED = ("document_current", "document_history", "cluster_life", "cluster_lineage")


def upgrade() -> None:
    for name in REPLACED:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.create_table(
        "topics",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("first_run", sa.Integer(), nullable=False),
        sa.Column("last_run", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["first_run"], ["runs.id"]),
        sa.ForeignKeyConstraint(["last_run"], ["runs.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "topic_snapshots",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("topic_id", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("n_stories", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("keywords", sa.Text(), nullable=False),
        sa.Column("representatives", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"]),
        sa.ForeignKeyConstraint(["topic_id"], ["topics.id"]),
        sa.PrimaryKeyConstraint("run_id", "topic_id"),
    )
    with op.batch_alter_table("cluster_snapshots", schema=None) as batch_op:
        batch_op.add_column(sa.Column("topic_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("topic_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("cluster_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("level", sa.String(length=8), nullable=False, server_default="story"))
    for name, sql in views(op.get_bind().dialect.name).items():
        op.execute(f"CREATE VIEW {name} AS {sql}")


def downgrade() -> None:
    earlier = views_of(Path(__file__).with_name("0002_history_views.py"), op.get_bind().dialect.name)
    for name in [*_VIEWS, *earlier]:  # SQLite checks every view when a batch operation renames a table back
        op.execute(f"DROP VIEW IF EXISTS {name}")
    with op.batch_alter_table("cluster_events", schema=None) as batch_op:
        batch_op.drop_column("level")
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_column("topic_id")
    with op.batch_alter_table("cluster_snapshots", schema=None) as batch_op:
        batch_op.drop_column("topic_id")
    op.drop_table("topic_snapshots")
    op.drop_table("topics")
    for name, sql in earlier.items():
        op.execute(f"CREATE VIEW {name} AS {sql}")

