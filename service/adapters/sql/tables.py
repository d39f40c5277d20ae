"""SQLAlchemy 2.0 table definitions: the one source the Alembic migrations are written against.

Times are naive UTC. Stories are the `clusters` tables (cluster_id is a story id); topics group
stories. Both ids are persistent across runs; -1 means noise.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

ingested_files = Table(
    "ingested_files",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("sha256", String(64), nullable=False, index=True),
    Column("size_bytes", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),  # processing, processed, failed, duplicate, interrupted, retrying, parked
    Column("attempts", Integer, nullable=False, default=1, server_default="1"),
    Column("encoding", String(64)),
    Column("rows_seen", Integer, nullable=False, default=0),
    Column("rows_stored", Integer, nullable=False, default=0),
    Column("rows_duplicate", Integer, nullable=False, default=0),
    Column("rows_rejected", Integer, nullable=False, default=0),
    Column("rows_updated", Integer, nullable=False, default=0, server_default="0"),  # corrections: same guid/url, new text
    Column("reason", Text),
    Column("received_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Index("ix_ingested_files_name_sha", "name", "sha256"),
)

documents = Table(
    "documents",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),  # = Milvus primary key
    Column("key", Text, nullable=False, unique=True),  # guid:…, url:… or text:<sha256>
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("url", Text),
    Column("published_at", DateTime, index=True),
    Column("ingested_at", DateTime, nullable=False, index=True),
    Column("file_id", Integer, ForeignKey("ingested_files.id")),
    Column("extra", Text),  # JSON of the file's other columns
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("status", String(16), nullable=False),  # running, done, failed
    Column("n_documents", Integer),
    Column("n_clusters", Integer),
    Column("n_noise", Integer),
    Column("params", Text),  # JSON
    Column("timings", Text),  # JSON: seconds per stage
    # the smallest assignments id among the rebuild rows this run holds (runs.rebuild_rows_at reads from there); NULL: from the start
    Column("rebuild_rows_from", BigInteger),
)

def _lifetimes(name: str) -> Table:
    """Persistent ids of one level (stories, topics): when each was first and last seen, alive or dead."""
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("first_run", Integer, ForeignKey("runs.id"), nullable=False),
        Column("last_run", Integer, ForeignKey("runs.id"), nullable=False),
        Column("first_seen", DateTime, nullable=False),
        Column("last_seen", DateTime, nullable=False),
        Column("status", String(16), nullable=False),  # alive, dead
    )


clusters = _lifetimes("clusters")  # stories

cluster_snapshots = Table(
    "cluster_snapshots",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id"), primary_key=True),
    Column("cluster_id", Integer, ForeignKey("clusters.id"), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("keywords", Text, nullable=False),  # JSON list
    Column("representatives", Text, nullable=False),  # JSON list of document ids
    Column("topic_id", Integer),  # the topic the story sat in at that run (-1: none)
)

# the coarse level: topics group stories; ids persistent across runs like stories'
topics = _lifetimes("topics")

topic_snapshots = Table(
    "topic_snapshots",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id"), primary_key=True),
    Column("topic_id", Integer, ForeignKey("topics.id"), primary_key=True),
    Column("size", Integer, nullable=False),  # documents
    Column("n_stories", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("keywords", Text, nullable=False),  # JSON list
    Column("representatives", Text, nullable=False),  # JSON list of document ids
)

assignments = Table(
    "assignments",
    metadata,
    # 64-bit: one row per document per rebuild outgrows 32 bits within weeks at scale (INTEGER is already 64-bit in SQLite)
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("document_id", BigInteger, ForeignKey("documents.id"), nullable=False),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False),
    Column("cluster_id", Integer, nullable=False),  # -1 = noise
    Column("probability", Float, nullable=False),
    Column("outlier_score", Float, nullable=False),
    Column("assigned_by", String(8), nullable=False),  # rebuild or predict
    Column("topic_id", Integer),  # -1 = noise at topic level; NULL in runs before topics existed
    Column("assigned_at", DateTime, nullable=False),
    Index("ix_assignments_document", "document_id", "id"),
    Index("ix_assignments_run_cluster", "run_id", "cluster_id"),
)

# A rebuild writes an assignments row only for documents whose story, topic or probability band changed
# (runs.probability_band); a document of the previous run that this run left out (it left the window,
# or its vector was lost) gets a row here, so "the document's row at or before run R" still says whether R held it.
assignment_exits = Table(
    "assignment_exits",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id"), primary_key=True),
    Column("document_id", BigInteger, ForeignKey("documents.id"), primary_key=True),
    Index("ix_assignment_exits_document", "document_id", "run_id"),
)

cluster_events = Table(
    "cluster_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id"), nullable=False, index=True),
    Column("at", DateTime, nullable=False),
    Column("level", String(8), nullable=False, default="story", server_default="story"),  # story or topic
    Column("kind", String(16), nullable=False),  # born, grew, shrank, split, merged, died; moved (a story changed topic)
    Column("cluster_id", Integer, nullable=False, index=True),
    Column("parents", Text, nullable=False),  # JSON list of cluster ids
    Column("children", Text, nullable=False),  # JSON list of cluster ids
    Column("size_before", Integer, nullable=False),
    Column("size_after", Integer, nullable=False),
)

document_revisions = Table(
    "document_revisions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("document_id", BigInteger, ForeignKey("documents.id"), nullable=False, index=True),
    Column("title", Text, nullable=False),  # the text as it was before the correction
    Column("description", Text, nullable=False, default=""),
    Column("url", Text),
    Column("published_at", DateTime),
    Column("replaced_at", DateTime, nullable=False),
    Column("replaced_by_file_id", Integer, ForeignKey("ingested_files.id")),
)

# alerts: a story born with enough headlines (new) or growing well above its own and the stream's rate (surging)
alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime, nullable=False),  # wall clock, UTC
    Column("run_id", Integer),  # the rebuild that raised it; NULL when raised after arrivals
    Column("kind", String(16), nullable=False),  # new, surging
    Column("story_id", Integer, nullable=False),
    Column("topic_id", Integer),
    Column("title", Text, nullable=False),
    Column("size", Integer, nullable=False),  # headlines in the story
    Column("recent", Integer, nullable=False),  # headlines in the last surge window of stream time
    Column("details", Text, nullable=False),  # JSON: rates and thresholds behind the decision
    Column("stream_time", DateTime),  # the news time the decision was made at
    Index("ix_alerts_story_kind", "story_id", "kind"),
)

# each story's alert state, so an alert is raised once per story and state change
story_alert_state = Table(
    "story_alert_state",
    metadata,
    Column("story_id", Integer, primary_key=True, autoincrement=False),
    Column("surging", Integer, nullable=False, default=0, server_default="0"),
    Column("announced_new", Integer, nullable=False, default=0, server_default="0"),
    Column("changed_at", DateTime, nullable=False),
)

# several ingest workers on one inbox (PostgreSQL + a Milvus server): a file is processed by the worker that
# holds its claim; a claim whose heartbeat stops (the worker was killed) expires and another worker takes it
file_claims = Table(
    "file_claims",
    metadata,
    Column("name", String(512), primary_key=True),
    Column("worker", String(128), nullable=False),
    Column("claimed_at", DateTime, nullable=False),
    Column("heartbeat_at", DateTime, nullable=False),
    Column("done", Integer, nullable=False, default=0, server_default="0"),
)

# leases: one holder at a time for a named role (the rebuild leader), held while renewed
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", DateTime, nullable=False),
)


# identity.split_drifted's content checks, one row per story that was mostly new documents in a rebuild: the figures
# that kept an id on its event (or split off a new one), for auditing a drift in SQL
story_drift_checks = Table(
    "story_drift_checks",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id"), primary_key=True),
    Column("story_id", Integer, primary_key=True, autoincrement=False),  # the id kept (the old members' story)
    Column("old_members", Integer, nullable=False),
    Column("new_members", Integer, nullable=False),
    Column("cosine", Float, nullable=False),  # unit centroid of old members . unit centroid of new members
    Column("min_cosine", Float, nullable=False),  # the threshold in force
    Column("split_story_id", Integer),  # the new story the drifted part became, NULL when kept whole
)

# alerts the webhook has not delivered yet: a row per alert from its posting until a 2xx answer; what a stop or a
# dead endpoint leaves here is sent again at the next start (migration 0008_webhook_outbox)
webhook_outbox = Table(
    "webhook_outbox",
    metadata,
    Column("alert_id", Integer, primary_key=True, autoincrement=False),  # = alerts.id: the receiver's idempotency key
    Column("payload", Text, nullable=False),  # the JSON body as first posted
    Column("queued_at", DateTime, nullable=False),
    Column("tries", Integer, nullable=False, default=0, server_default="0"),
    Column("last_error", Text),
)
