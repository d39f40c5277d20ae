"""Views that answer what users ask of the history

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""
from alembic import op

from service.adapters.sql.dialect import concat_agg, json_elements

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

def views(dialect: str = "sqlite") -> dict[str, str]:
    """The views in this database's spelling (SQLite or PostgreSQL)."""
    parts = {"agg": concat_agg(dialect, "e.kind || ':' || e.parents || '>' || e.children", "; "),
             "parents": json_elements(dialect, "e.parents", "p"), "children": json_elements(dialect, "e.children", "c")}
    return {k: v.format(**parts) for k, v in _VIEWS.items()}


_VIEWS = {
    # the latest placement of every document (rebuild or predict); documents never placed have NULLs
    "document_current": """
        SELECT d.id AS document_id, d.key, d.title, d.published_at, d.ingested_at,
               a.cluster_id, a.probability, a.outlier_score, a.assigned_by, a.run_id
        FROM documents d
        LEFT JOIN assignments a ON a.id = (SELECT MAX(a2.id) FROM assignments a2 WHERE a2.document_id = d.id)
    """,
    # which cluster a headline belonged to over time, with the cluster's name then
    "document_history": """
        SELECT a.document_id, d.title, a.run_id, r.finished_at AS run_at, a.assigned_at, a.assigned_by,
               a.cluster_id, s.name AS cluster_name, a.probability, a.outlier_score
        FROM assignments a
        JOIN documents d ON d.id = a.document_id
        JOIN runs r ON r.id = a.run_id AND r.status = 'done'
        LEFT JOIN cluster_snapshots s ON s.run_id = a.run_id AND s.cluster_id = a.cluster_id
    """,
    # size of each cluster in each run and its growth since the run before (0 before it existed)
    "cluster_growth": """
        SELECT s.cluster_id, s.run_id, r.finished_at AS run_at, s.size, s.name,
               s.size - COALESCE(p.size, 0) AS growth, p.run_id AS previous_run_id
        FROM cluster_snapshots s
        JOIN runs r ON r.id = s.run_id
        LEFT JOIN cluster_snapshots p ON p.cluster_id = s.cluster_id
             AND p.run_id = (SELECT MAX(q.run_id) FROM cluster_snapshots q WHERE q.cluster_id = s.cluster_id AND q.run_id < s.run_id)
    """,
    # the life of a cluster: one row per run it was seen in, plus its lineage events
    "cluster_life": """
        SELECT s.cluster_id, s.run_id, r.finished_at AS run_at, s.size, s.name, s.keywords, s.representatives,
               (SELECT {agg}
                  FROM cluster_events e WHERE e.cluster_id = s.cluster_id AND e.run_id = s.run_id) AS events
        FROM cluster_snapshots s JOIN runs r ON r.id = s.run_id
    """,
    # every parent -> child link recorded by a split, merge or birth
    "cluster_lineage": """
        SELECT e.run_id, e.at, e.kind, CAST(p.value AS INTEGER) AS parent_id, e.cluster_id AS child_id
        FROM cluster_events e, {parents} WHERE e.kind IN ('born', 'merged')
        UNION ALL
        SELECT e.run_id, e.at, e.kind, e.cluster_id AS parent_id, CAST(c.value AS INTEGER) AS child_id
        FROM cluster_events e, {children} WHERE e.kind IN ('split', 'merged')
    """,
    # stories by birth: when each cluster was first seen, its first and latest size and name
    "cluster_births": """
        SELECT c.id AS cluster_id, c.first_seen, c.last_seen, c.status,
               f.size AS first_size, f.name AS first_name, l.size AS latest_size, l.name AS latest_name
        FROM clusters c
        JOIN cluster_snapshots f ON f.cluster_id = c.id AND f.run_id = c.first_run
        JOIN cluster_snapshots l ON l.cluster_id = c.id AND l.run_id = c.last_run
    """,
}


def upgrade() -> None:
    for name, sql in views(op.get_bind().dialect.name).items():
        op.execute(f"CREATE VIEW {name} AS {sql}")


def downgrade() -> None:
    for name in _VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
