"""Changed-rows-only assignments: a rebuild writes a row only where a document's story, topic or probability
band changed; the views read "the document's latest row at or before run R" and answer as the full rows did

Revision ID: 0008_changed_assignments
Revises: 0007
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa
from pathlib import Path

from service.adapters.sql.dialect import views_of

revision = "0008_changed_assignments"
down_revision = "0008_webhook_outbox"
branch_labels = None
depends_on = None

LATEST_RUN = "(SELECT MAX(id) FROM runs WHERE status = 'done')"


def views(dialect: str = "sqlite") -> dict[str, str]:
    """The views in this database's spelling (the same on SQLite and PostgreSQL)."""
    return {k: v.format(latest_run=LATEST_RUN) for k, v in _VIEWS.items()}


# run_assignments: every done run's rows as the full-row schema held them. A rebuild row of run R is the
# document's latest rebuild row at or before R, unless the document left between that row's run and R
# (assignment_exits); arrivals placed between rebuilds ('predict') are one row each, as written.
_VIEWS = {
    "run_assignments": """
        SELECT r.id AS run_id, a.id AS assignment_id, a.document_id, a.cluster_id, a.topic_id, a.probability, a.outlier_score,
               a.assigned_by, a.assigned_at, a.run_id AS written_run_id
        FROM runs r
        JOIN assignments a ON a.assigned_by = 'rebuild' AND a.run_id <= r.id
        WHERE r.status = 'done'
          AND a.id = (SELECT MAX(a2.id) FROM assignments a2
                      WHERE a2.document_id = a.document_id AND a2.assigned_by = 'rebuild' AND a2.run_id <= r.id)
          AND NOT EXISTS (SELECT 1 FROM assignment_exits x
                          WHERE x.document_id = a.document_id AND x.run_id > a.run_id AND x.run_id <= r.id)
        UNION ALL
        SELECT a.run_id, a.id, a.document_id, a.cluster_id, a.topic_id, a.probability, a.outlier_score,
               a.assigned_by, a.assigned_at, a.run_id
        FROM assignments a WHERE a.assigned_by = 'predict'
    """,
    # run_id: a rebuild row stands until the document left (the last done run before its exit) or, if it
    # never left, through the latest done run: the run of the row the full-row schema would have last written
    "document_current": """
        SELECT d.id AS document_id, d.key, d.title, d.published_at, d.ingested_at,
               a.cluster_id, a.cluster_id AS story_id, a.topic_id, a.probability, a.outlier_score, a.assigned_by,
               CASE WHEN a.assigned_by = 'rebuild' THEN COALESCE(
                   (SELECT MAX(r.id) FROM runs r WHERE r.status = 'done' AND r.id < (
                       SELECT MIN(x.run_id) FROM assignment_exits x WHERE x.document_id = d.id AND x.run_id > a.run_id)),
                   {latest_run}) ELSE a.run_id END AS run_id
        FROM documents d
        LEFT JOIN assignments a ON a.id = (SELECT MAX(a2.id) FROM assignments a2 WHERE a2.document_id = d.id)
    """,
    "document_history": """
        SELECT a.document_id, d.title, a.run_id, r.finished_at AS run_at, a.assigned_at, a.assigned_by,
               a.cluster_id, a.cluster_id AS story_id, s.name AS cluster_name, s.name AS story_name,
               a.topic_id, t.name AS topic_name, a.probability, a.outlier_score
        FROM run_assignments a
        JOIN documents d ON d.id = a.document_id
        JOIN runs r ON r.id = a.run_id AND r.status = 'done'
        LEFT JOIN cluster_snapshots s ON s.run_id = a.run_id AND s.cluster_id = a.cluster_id
        LEFT JOIN topic_snapshots t ON t.run_id = a.run_id AND t.topic_id = a.topic_id
    """,
}
REPLACED = ("document_current", "document_history")


def upgrade() -> None:
    for name in REPLACED:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.create_table(
        "assignment_exits",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"]),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"]),
        sa.PrimaryKeyConstraint("run_id", "document_id"),
    )
    op.create_index("ix_assignment_exits_document", "assignment_exits", ["document_id", "run_id"])
    for name, sql in views(op.get_bind().dialect.name).items():
        op.execute(f"CREATE VIEW {name} AS {sql}")


def downgrade() -> None:
    """Back to the full-row views. Rows a rebuild did not write are not made up: after a downgrade,
    document_history lists a document only for the runs that changed it."""
    for name in [*REPLACED, "run_assignments"]:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.drop_index("ix_assignment_exits_document", table_name="assignment_exits")
    op.drop_table("assignment_exits")
    earlier = views_of(Path(__file__).with_name("0004_stories_and_topics.py"), op.get_bind().dialect.name)
    for name in REPLACED:
        op.execute(f"CREATE VIEW {name} AS {earlier[name]}")
