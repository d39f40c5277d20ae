"""What people and the report read: search hits' documents, a story, a topic, the export, the status counts,
and the report's reads (report_queries.py) (port: ports.StoryReads)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

from sqlalchemy import Engine, func, select, text

from ...domain import Alert, ExportRow, FailedFile, FailedRun, FileWaiting, HistoryStatus, Lineage, ReportDocs, StoryRow, TopicRow
from . import report_queries as rq
from .tables import documents, ingested_files, runs


def _links_once(rows) -> list[dict]:
    """One line per (run, parent, child): a split is also its child's birth from the parent, and the view lists both."""
    rank = {"split": 0, "merged": 1, "born": 2}
    best: dict[tuple, dict] = {}
    for r in rows:
        key = (r["run_id"], r["parent_id"], r["child_id"])
        if key not in best or rank.get(r["kind"], 3) < rank.get(best[key]["kind"], 3):
            best[key] = dict(r)
    return sorted(best.values(), key=lambda r: (r["run_id"], r["parent_id"], r["child_id"]))



class SqlStoryReads:
    """Plain data for `newsclust search`, `story`, `topic`, `status`, `export` and the report page; newest first where it matters."""

    def __init__(self, engine: Engine):
        self.engine = engine

    # -- reading -----------------------------------------------------------------------
    def export_rows(self) -> Iterator[ExportRow]:
        """One row per document: its latest assignment (rebuild or predict), or none yet, with the names of its
        story and topic as of the latest rebuild."""
        q = text(
            """
            SELECT d.key AS key, d.id AS id, d.title AS title, a.cluster_id, a.topic_id, a.probability, a.outlier_score,
                   a.assigned_by, a.run_id, s.name AS story_name, t.name AS topic_name
            FROM documents d
            JOIN document_current a ON a.document_id = d.id
            LEFT JOIN cluster_snapshots s ON s.cluster_id = a.cluster_id AND s.run_id = (SELECT MAX(id) FROM runs WHERE status = 'done')
            LEFT JOIN topic_snapshots t ON t.topic_id = a.topic_id AND t.run_id = (SELECT MAX(id) FROM runs WHERE status = 'done')
            ORDER BY d.ingested_at, d.id
            """
        )
        with self.engine.connect() as c:
            for r in c.execute(q):
                yield ExportRow(*r)

    def status(self) -> HistoryStatus:
        """The counts and the latest failures, as data (views.format_status and queries.status shape them)."""
        with self.engine.connect() as c:
            n_docs = c.execute(select(func.count()).select_from(documents)).scalar_one()
            run = c.execute(select(runs).where(runs.c.status == "done").order_by(runs.c.id.desc()).limit(1)).first()
            pending = n_docs if run is None else c.execute(
                select(func.count()).select_from(documents).where(documents.c.ingested_at >= run.started_at)
            ).scalar_one()
            files = dict(c.execute(select(ingested_files.c.state, func.count()).group_by(ingested_files.c.state)).all())
            running = c.execute(select(runs.c.id, runs.c.started_at).where(runs.c.status == "running").order_by(runs.c.id.desc()).limit(1)).first()
            failed_run = c.execute(select(runs.c.id, runs.c.finished_at, runs.c.timings).where(runs.c.status == "failed")
                                   .order_by(runs.c.id.desc()).limit(1)).first()
            failed_file = c.execute(select(ingested_files.c.name, ingested_files.c.finished_at, ingested_files.c.reason)
                                    .where(ingested_files.c.state.in_(("failed", "retrying", "parked")), ingested_files.c.finished_at.is_not(None))
                                    .order_by(ingested_files.c.finished_at.desc()).limit(1)).first()
            waiting = c.execute(select(ingested_files.c.name, ingested_files.c.state, ingested_files.c.attempts, ingested_files.c.reason)
                                .where(ingested_files.c.state.in_(("retrying", "parked"))).order_by(ingested_files.c.id)).all()
        return HistoryStatus(
            documents=n_docs, stories=run.n_clusters if run else 0, noise=run.n_noise if run else 0, pending_arrivals=pending,
            last_run_id=run.id if run else None, last_run_at=run.finished_at if run else None,
            running_since=running.started_at if running else None,
            failed_run=FailedRun(failed_run.id, failed_run.finished_at, json.loads(failed_run.timings or "{}").get("error", "?"))
            if failed_run is not None else None,
            failed_file=FailedFile(failed_file.name, failed_file.finished_at, failed_file.reason) if failed_file is not None else None,
            files=files, files_waiting=[FileWaiting(w.name, w.state, w.attempts, w.reason) for w in waiting])

    # -- what the report reads (report_queries.py) ---------------------------------------
    def report_documents(self, run_id: int) -> ReportDocs:
        return rq.report_documents(self.engine, run_id)

    def run_stories(self, run_id: int) -> list[StoryRow]:
        """A run's stories, by id."""
        return rq.run_stories(self.engine, run_id)

    def run_topics(self, run_id: int) -> list[TopicRow]:
        """A run's topics, by id."""
        return rq.run_topics(self.engine, run_id)

    def lineage(self, run_id: int, held=None) -> Lineage:
        return rq.lineage(self.engine, run_id, held)

    def run_alerts(self, run_id: int, limit: int = 20) -> list[Alert]:
        """The newest alerts raised up to the end of this run's time (the next finished rebuild), newest first."""
        return rq.alerts(self.engine, until=rq.next_run_finished(self.engine, run_id), limit=limit)


    def _latest(self, c) -> int | None:
        return c.execute(select(func.max(runs.c.id)).where(runs.c.status == "done")).scalar_one()

    def documents(self, ids: Sequence[int]) -> dict[int, dict]:
        """Each document's title, time and its current story and topic (with their names as of the latest rebuild)."""
        if not ids:
            return {}
        q = text(f"""
            SELECT d.id, d.title, d.url, d.published_at, d.ingested_at, a.cluster_id AS story_id, a.topic_id,
                   s.name AS story_name, t.name AS topic_name
            FROM documents d
            LEFT JOIN assignments a ON a.id = (SELECT MAX(a2.id) FROM assignments a2 WHERE a2.document_id = d.id)
            LEFT JOIN cluster_snapshots s ON s.cluster_id = a.cluster_id AND s.run_id = (SELECT MAX(id) FROM runs WHERE status = 'done')
            LEFT JOIN topic_snapshots t ON t.topic_id = a.topic_id AND t.run_id = (SELECT MAX(id) FROM runs WHERE status = 'done')
            WHERE d.id IN ({",".join(str(int(i)) for i in ids)})
        """)
        with self.engine.connect() as c:
            return {int(r.id): dict(r._mapping) for r in c.execute(q)}

    def story(self, story_id: int) -> dict | None:
        with self.engine.connect() as c:
            snap = c.execute(text("""
                SELECT s.cluster_id AS story_id, s.name AS title, s.keywords, s.size, s.topic_id, s.run_id, c.status, c.first_seen, c.last_seen,
                       t.name AS topic_name
                FROM cluster_snapshots s JOIN clusters c ON c.id = s.cluster_id
                LEFT JOIN topic_snapshots t ON t.run_id = s.run_id AND t.topic_id = s.topic_id
                WHERE s.cluster_id = :id ORDER BY s.run_id DESC LIMIT 1"""), {"id": story_id}).mappings().first()
            if snap is None:
                return None
            sizes = c.execute(text("SELECT run_id, run_at, size, topic_id FROM cluster_life WHERE story_id = :id ORDER BY run_id"),
                              {"id": story_id}).mappings().all()
            lineage = c.execute(text("""SELECT run_id, kind, parent_id, child_id FROM cluster_lineage
                                        WHERE (parent_id = :id OR child_id = :id) AND parent_id != child_id ORDER BY run_id"""),
                                {"id": story_id}).mappings().all()
            moves = c.execute(text("SELECT run_id, from_topic_id, to_topic_id FROM story_moves WHERE story_id = :id ORDER BY run_id"),
                              {"id": story_id}).mappings().all()
            newest = self._headlines(c, "cluster_id", story_id)
        # core first: a stray member placed last is the newest, and newest first put it on top of the story
        core = sorted(newest, key=lambda h: -(h["probability"] or 0.0))
        return {**dict(snap), "keywords": json.loads(snap["keywords"]), "sizes": [dict(r) for r in sizes],
                "lineage": _links_once(lineage), "moves": [dict(r) for r in moves], "headlines": core, "newest": newest}

    def topic(self, topic_id: int) -> dict | None:
        with self.engine.connect() as c:
            snap = c.execute(text("""
                SELECT t.topic_id, t.name, t.keywords, t.size, t.n_stories, t.run_id, p.status, p.first_seen, p.last_seen
                FROM topic_snapshots t JOIN topics p ON p.id = t.topic_id WHERE t.topic_id = :id ORDER BY t.run_id DESC LIMIT 1"""),
                             {"id": topic_id}).mappings().first()
            if snap is None:
                return None
            sizes = c.execute(text("SELECT run_id, run_at, size, n_stories FROM topic_life WHERE topic_id = :id ORDER BY run_id"),
                              {"id": topic_id}).mappings().all()
            stories = c.execute(text("""SELECT cluster_id AS story_id, name AS title, size FROM cluster_snapshots
                                        WHERE run_id = :run AND topic_id = :id ORDER BY size DESC, cluster_id"""),
                                {"run": snap["run_id"], "id": topic_id}).mappings().all()
        return {**dict(snap), "keywords": json.loads(snap["keywords"]), "sizes": [dict(r) for r in sizes], "stories": [dict(r) for r in stories]}

    def _headlines(self, c, column: str, value: int) -> list[dict]:
        """The headlines the latest rebuild put there, plus arrivals placed there since, newest news first."""
        latest = self._latest(c)
        rows = c.execute(text(f"""
            SELECT d.id, d.title, d.url, d.published_at, d.ingested_at, d.extra, a.assigned_by, a.probability
            FROM run_assignments a JOIN documents d ON d.id = a.document_id
            WHERE a.run_id = :run AND a.{column} = :value
              AND a.assignment_id = (SELECT MAX(a2.id) FROM assignments a2 WHERE a2.document_id = d.id)
            ORDER BY COALESCE(d.published_at, d.ingested_at) DESC, d.id"""), {"run": latest, "value": value}).mappings().all()
        return [dict(r) for r in rows]


