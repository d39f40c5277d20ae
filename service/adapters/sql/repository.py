"""The SQLite history: schema by Alembic, WAL so readers never wait on the writer."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from ...domain import (FUTURE_KEY, NOISE, Alert, ClusterEvent, ExportRow, Headline, Lineage, ReportDocs, Run, StoryRow, TopicRow, unix_seconds,
                       utcnow)
from . import report_queries as rq
from .dialect import bind_processor, bulk_insert, insert_for, param_mark
from .tables import (alerts, assignment_exits, assignments, cluster_events, file_claims, leases, story_alert_state, cluster_snapshots, clusters,
                     document_revisions, documents, ingested_files, runs, story_drift_checks, topic_snapshots, topics)

# ledger states of a file that has not ended yet: a new attempt continues its row instead of adding one
UNFINISHED_FILE_STATES = ("processing", "interrupted", "retrying", "parked")

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"
CHUNK = 900  # SQLite's bound-parameter limit, with room to spare
SCAN_MIN, SCAN_SHARE = 2_000, 8  # more ids than SCAN_MIN and at least 1/SCAN_SHARE of the table: read in one scan


def make_engine(target: Path | str, busy_timeout_s: float = 30.0) -> Engine:
    """A SQLite file (a path, or a sqlite:/// URL) or a PostgreSQL server (postgresql+psycopg://...).

    SQLite: WAL, so readers never wait on the writer; past busy_timeout_s of waiting for another
    writer a write fails as 'database is locked', which the service treats as a transient fault.
    PostgreSQL: connections checked before use, so a restarted server is a retry, not a crash.
    """
    url = target if isinstance(target, str) and "://" in target else f"sqlite:///{target}"
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": int(max(1, busy_timeout_s))}
                             if url.startswith("postgresql") else {})
    engine = create_engine(url, connect_args={"timeout": busy_timeout_s})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):  # noqa: ANN001
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cur.close()

    return engine


def upgrade(engine: Engine) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _links_once(rows) -> list[dict]:
    """One line per (run, parent, child): a split is also its child's birth from the parent, and the view lists both."""
    rank = {"split": 0, "merged": 1, "born": 2}
    best: dict[tuple, dict] = {}
    for r in rows:
        key = (r["run_id"], r["parent_id"], r["child_id"])
        if key not in best or rank.get(r["kind"], 3) < rank.get(best[key]["kind"], 3):
            best[key] = dict(r)
    return sorted(best.values(), key=lambda r: (r["run_id"], r["parent_id"], r["child_id"]))


class SqlRepository:
    def __init__(self, engine: Engine, every_row: bool = False):
        """every_row: write a rebuild row for every document, changed or not (the full-row schema the views
        are checked against in the tests; the views answer the same either way)."""
        self.engine = engine
        self.every_row = every_row

    # -- the file ledger ---------------------------------------------------------------
    def processed_file(self, sha256: str) -> int | None:
        """The ledger row of a processed file with these bytes, if any."""
        with self.engine.connect() as c:
            return c.execute(
                select(ingested_files.c.id).where(ingested_files.c.sha256 == sha256, ingested_files.c.state == "processed").limit(1)
            ).scalar()

    def file_name(self, file_id: int) -> str | None:
        with self.engine.connect() as c:
            return c.execute(select(ingested_files.c.name).where(ingested_files.c.id == file_id)).scalar()

    def start_file(self, name: str, sha256: str, size: int, tries: int = 1) -> tuple[int, int]:
        """(ledger row, attempt number): one row per file, however often it is retried. tries: this try's number as the
        caller counted it (tries that failed before they reached the database, a full disk, count too)."""
        with self.engine.begin() as c:
            row = c.execute(
                select(ingested_files.c.id, ingested_files.c.attempts).where(
                    ingested_files.c.name == name, ingested_files.c.sha256 == sha256, ingested_files.c.state.in_(UNFINISHED_FILE_STATES)
                ).order_by(ingested_files.c.id.desc()).limit(1)
            ).first()
            if row is not None:
                attempt = max(int(row.attempts) + 1, tries)
                c.execute(update(ingested_files).where(ingested_files.c.id == row.id).values(state="processing", attempts=attempt))
                return int(row.id), attempt
            return int(c.execute(
                insert(ingested_files).values(name=name, sha256=sha256, size_bytes=size, state="processing", received_at=utcnow(), attempts=max(1, tries),
                                             rows_seen=0, rows_stored=0, rows_duplicate=0, rows_rejected=0, rows_updated=0)
            ).inserted_primary_key[0]), max(1, tries)

    def finish_file(self, file_id: int, state: str, *, seen=0, stored=0, duplicate=0, rejected=0, updated=0, encoding=None, reason=None) -> None:
        with self.engine.begin() as c:
            c.execute(
                update(ingested_files).where(ingested_files.c.id == file_id).values(
                    state=state, rows_seen=seen, rows_stored=stored, rows_duplicate=duplicate, rows_rejected=rejected, rows_updated=updated,
                    encoding=encoding, reason=reason, finished_at=utcnow(),
                )
            )

    def note_file(self, file_id: int, state: str, reason: str) -> None:
        """A file that will be taken again (retrying) or is left where it is (parked), with why."""
        with self.engine.begin() as c:
            c.execute(update(ingested_files).where(ingested_files.c.id == file_id).values(state=state, reason=reason, finished_at=utcnow()))

    def mark_interrupted(self) -> dict[str, int]:
        with self.engine.begin() as c:
            files = c.execute(update(ingested_files).where(ingested_files.c.state == "processing").values(
                state="interrupted", reason="the process stopped mid-file; taken again from the inbox", finished_at=utcnow())).rowcount
        return {"files": files, "runs": self.abandon_running_runs("interrupted")}

    def abandon_running_runs(self, reason: str) -> int:
        """Runs left 'running' by a stop or a kill are failed: a rebuild commits in one transaction, so the
        previous run's clustering is still whole. A rebuild that commits after this call still ends 'done'."""
        with self.engine.begin() as c:
            return c.execute(update(runs).where(runs.c.status == "running").values(
                status="failed", finished_at=utcnow(), timings=json.dumps({"error": reason}))).rowcount

    # -- documents ---------------------------------------------------------------------
    def stored_texts(self, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        """(title, description) of the ids already stored: a known id with other text is a correction."""
        out: dict[int, tuple[str, str]] = {}
        with self.engine.connect() as c:
            for s in range(0, len(ids), CHUNK):
                chunk = [int(i) for i in ids[s : s + CHUNK]]
                for r in c.execute(select(documents.c.id, documents.c.title, documents.c.description).where(documents.c.id.in_(chunk))):
                    out[int(r.id)] = (r.title, r.description or "")
        return out

    def revise_documents(self, headlines: Sequence[Headline], file_id: int | None, at: datetime) -> None:
        """Corrections: the old text goes to document_revisions, the document keeps the newest text."""
        if not headlines:
            return
        ids = [h.id for h in headlines]
        with self.engine.begin() as c:
            old = {}
            for s in range(0, len(ids), CHUNK):
                for r in c.execute(select(documents).where(documents.c.id.in_(ids[s : s + CHUNK]))):
                    old[int(r.id)] = r
            c.execute(insert(document_revisions), [
                {"document_id": h.id, "title": old[h.id].title, "description": old[h.id].description or "", "url": old[h.id].url,
                 "published_at": old[h.id].published_at, "replaced_at": at, "replaced_by_file_id": file_id}
                for h in headlines if h.id in old
            ])
            for h in headlines:
                c.execute(update(documents).where(documents.c.id == h.id).values(
                    title=h.title, description=h.description, url=h.url,
                    published_at=h.published_at if h.published_at is not None else old[h.id].published_at,
                    extra=json.dumps(h.extra, ensure_ascii=False) if h.extra else None))

    def unplaced_ids(self, ids: Sequence[int]) -> np.ndarray:
        """The ids no rebuild or prediction has placed yet."""
        placed: set[int] = set()
        with self.engine.connect() as c:
            for s in range(0, len(ids), CHUNK):
                chunk = [int(i) for i in ids[s : s + CHUNK]]
                placed.update(int(r[0]) for r in c.execute(select(assignments.c.document_id).where(assignments.c.document_id.in_(chunk)).distinct()))
        return np.array(sorted(set(int(i) for i in ids) - placed), np.int64)

    def all_document_ids(self) -> np.ndarray:
        """Every stored document id, sorted: what a rebuild may cluster (a vector without its row is not news)."""
        with self.engine.connect() as c:
            ids = np.fromiter((r[0] for r in c.execute(select(documents.c.id))), dtype=np.int64)
        ids.sort()
        return ids

    def add_documents(self, headlines: Sequence[Headline], file_id: int | None, ingested_at: datetime) -> int:
        """INSERT OR IGNORE: a row already stored (same identity) stays as it was."""
        rows = [
            {"id": h.id, "key": h.key, "title": h.title, "description": h.description, "url": h.url, "published_at": h.published_at,
             "ingested_at": ingested_at, "file_id": file_id, "extra": json.dumps(h.extra, ensure_ascii=False) if h.extra else None}
            for h in headlines
        ]
        if not rows:
            return 0
        with self.engine.begin() as c:
            res = c.execute(insert_for(c.dialect.name, documents).on_conflict_do_nothing(), rows)
            return res.rowcount

    def document_texts(self, ids: np.ndarray) -> dict[int, tuple[str, str]]:
        """(title, description) by id. A rebuild asks for most of the table: one scan of it beats thousands of
        IN (...) lookups (at 20k of 20k documents 0.47 s of lookups against 0.02 s of scan); a few ids are looked up."""
        out: dict[int, tuple[str, str]] = {}
        ids = np.asarray(ids, np.int64)
        with self.engine.connect() as c:
            if len(ids) > SCAN_MIN and len(ids) * SCAN_SHARE >= c.execute(select(func.count()).select_from(documents)).scalar_one():
                wanted = set(ids.tolist())
                for rows in _driver_rows(c, "SELECT id, title, description FROM documents"):
                    out.update((i, (t, d or "")) for i, t, d in rows if i in wanted)
                return out
            for s in range(0, len(ids), CHUNK):
                chunk = ids[s : s + CHUNK].tolist()
                sql = f"SELECT id, title, description FROM documents WHERE id IN ({', '.join(['{p}'] * len(chunk))})"
                for rows in _driver_rows(c, sql, chunk):
                    out.update((i, (t, d or "")) for i, t, d in rows)
        return out

    def document_times(self, ids: np.ndarray) -> dict[int, tuple[datetime | None, datetime]]:
        out: dict[int, tuple[datetime | None, datetime]] = {}
        with self.engine.connect() as c:
            for s in range(0, len(ids), CHUNK):
                chunk = [int(i) for i in ids[s : s + CHUNK]]
                for r in c.execute(select(documents.c.id, documents.c.published_at, documents.c.ingested_at).where(documents.c.id.in_(chunk))):
                    out[int(r.id)] = (r.published_at, r.ingested_at)
        return out

    def newest_time(self, by: str) -> datetime | None:
        """The stream's 'now': its newest published time (an undated row's ingest time is the wall clock, later than
        every row of a replayed stream), the newest ingest time only when no row has a published time."""
        with self.engine.connect() as c:
            newest = None if by == "ingested" else c.execute(select(func.max(documents.c.published_at))).scalar_one()
            return newest if newest is not None else c.execute(select(func.max(documents.c.ingested_at))).scalar_one()

    # -- runs --------------------------------------------------------------------------
    def start_run(self, params: dict) -> int:
        with self.engine.begin() as c:
            return c.execute(insert(runs).values(started_at=utcnow(), status="running", params=json.dumps(params))).inserted_primary_key[0]

    def fail_run(self, run_id: int, reason: str) -> None:
        with self.engine.begin() as c:
            c.execute(update(runs).where(runs.c.id == run_id).values(status="failed", finished_at=utcnow(), timings=json.dumps({"error": reason})))

    def latest_run(self) -> Run | None:
        with self.engine.connect() as c:
            row = c.execute(select(runs).where(runs.c.status == "done").order_by(runs.c.id.desc()).limit(1)).first()
        return _run(row) if row is not None else None

    def done_runs(self) -> list[Run]:
        """Newest first."""
        with self.engine.connect() as c:
            return [_run(r) for r in c.execute(select(runs).where(runs.c.status == "done").order_by(runs.c.id.desc()))]

    def run(self, run_id: int) -> Run | None:
        with self.engine.connect() as c:
            row = c.execute(select(runs).where(runs.c.id == run_id)).first()
        return _run(row) if row is not None else None

    def next_cluster_id(self) -> int:
        """Ids are never reused: the next one follows every id ever given, dead clusters included."""
        with self.engine.connect() as c:
            return int(c.execute(select(func.coalesce(func.max(clusters.c.id), 0))).scalar_one()) + 1

    def next_topic_id(self) -> int:
        with self.engine.connect() as c:
            return int(c.execute(select(func.coalesce(func.max(topics.c.id), 0))).scalar_one()) + 1

    def story_topics(self, run_id: int) -> dict[int, int]:
        """Each story's topic in a run."""
        with self.engine.connect() as c:
            return {int(r[0]): int(r[1]) for r in c.execute(
                select(cluster_snapshots.c.cluster_id, cluster_snapshots.c.topic_id)
                .where(cluster_snapshots.c.run_id == run_id, cluster_snapshots.c.topic_id.is_not(None)))}

    def run_labels(self, run_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(document ids, persistent cluster ids) a rebuild gave, sorted by document id."""
        return self._labels(run_id, "rebuild", assignments.c.cluster_id)

    def run_topic_labels(self, run_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(document ids, persistent topic ids) a rebuild gave, sorted by document id (empty for runs before topics)."""
        return self._labels(run_id, "rebuild", assignments.c.topic_id)

    def placed_labels(self, run_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(document ids, persistent cluster ids or NOISE) of the arrivals placed under a run, sorted by document id."""
        return self._labels(run_id, "predict", assignments.c.cluster_id)

    def _labels(self, run_id: int, assigned_by: str, label) -> tuple[np.ndarray, np.ndarray]:
        """One level's labels; a nullable level (topics: NULL in runs before topics) leaves its NULLs out."""
        with self.engine.connect() as c:  # every document of a run, twice per rebuild: plain driver rows
            if assigned_by == "rebuild":
                held = _rebuild_rows_at(c, run_id)
                docs, labels = held["document_id"], held["topic_id" if label.name == "topic_id" else "cluster_id"]
                keep = labels != UNSET_TOPIC
                return docs[keep], labels[keep]
            unset = f" AND {label.name} IS NOT NULL" if label.nullable else ""
            sql = (f"SELECT document_id, {label.name} FROM assignments WHERE run_id = {{p}} AND assigned_by = {{p}}{unset} "
                   "ORDER BY document_id")
            rows = [r for batch in _driver_rows(c, sql, (int(run_id), assigned_by)) for r in batch]
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        docs, labels = zip(*rows)
        return np.asarray(docs, np.int64), np.asarray(labels, np.int64)

    def commit_run(
        self,
        run_id: int,
        *,
        doc_ids: np.ndarray,
        labels: np.ndarray,
        probabilities: np.ndarray,
        outlier_scores: np.ndarray,
        names: dict[int, tuple[str, list[str], list[int]]],
        events: Iterable[ClusterEvent],
        timings: dict[str, float],
        params: dict,
        topics: np.ndarray | None = None,
        story_topics: dict[int, int] | None = None,
        topic_names: dict[int, tuple[str, list[str], list[int]]] | None = None,
        drift_checks: list[dict] | None = None,
    ) -> None:
        """Everything a rebuild produced, in one transaction: readers see the old run or the whole new one."""
        now = utcnow()
        sizes = dict(zip(*np.unique(labels[labels != NOISE], return_counts=True)))
        story_topics = story_topics or {}
        topic_names = topic_names or {}
        topic_of = topics if topics is not None else np.full(len(doc_ids), NOISE, np.int64)
        with self.engine.begin() as c:
            self._commit_topics(c, run_id, now, topic_of, story_topics, topic_names, labels)
            alive = [int(k) for k in sizes]
            known = {r[0] for r in c.execute(select(clusters.c.id))}
            new = [cid for cid in alive if cid not in known]
            if new:
                c.execute(insert(clusters), [{"id": cid, "first_run": run_id, "last_run": run_id, "first_seen": now, "last_seen": now, "status": "alive"} for cid in new])
            for s in range(0, len(alive), CHUNK):
                c.execute(update(clusters).where(clusters.c.id.in_(alive[s : s + CHUNK])).values(last_run=run_id, last_seen=now, status="alive"))
            c.execute(update(clusters).where(clusters.c.status == "alive", clusters.c.last_run != run_id).values(status="dead"))
            if alive:
                c.execute(insert(cluster_snapshots), [
                    {"run_id": run_id, "cluster_id": cid, "size": int(sizes[cid]), "name": names[cid][0],
                     "keywords": json.dumps(names[cid][1], ensure_ascii=False), "representatives": json.dumps(names[cid][2]),
                     "topic_id": int(story_topics.get(cid, NOISE))}
                    for cid in alive
                ])
            doc_ids, labels, topic_of = (np.asarray(x, np.int64) for x in (doc_ids, labels, topic_of))
            probabilities, outlier_scores = np.asarray(probabilities, np.float64), np.asarray(outlier_scores, np.float64)
            write = _changed_rows(c, run_id, doc_ids, labels, topic_of, probabilities, self.every_row)
            _insert_assignments(c, run_id, "rebuild", now, doc_ids[write], labels[write], probabilities[write], outlier_scores[write],
                                topic_of[write])
            ev = [
                {"run_id": run_id, "at": now, "level": e.level, "kind": e.kind, "cluster_id": e.cluster_id, "parents": json.dumps(list(e.parents)),
                 "children": json.dumps(list(e.children)), "size_before": e.size_before, "size_after": e.size_after}
                for e in events
            ]
            if ev:
                c.execute(insert(cluster_events), ev)
            if drift_checks:
                c.execute(insert(story_drift_checks), [{"run_id": run_id, **row} for row in drift_checks])
            c.execute(update(runs).where(runs.c.id == run_id).values(
                status="done", finished_at=utcnow(), n_documents=len(doc_ids), n_clusters=len(alive),
                n_noise=int((labels == NOISE).sum()), timings=json.dumps(timings), params=json.dumps(params),
            ))

    @staticmethod
    def _commit_topics(c, run_id: int, now: datetime, topic_of: np.ndarray, story_topics: dict[int, int],
                       topic_names: dict[int, tuple[str, list[str], list[int]]], story_labels: np.ndarray) -> None:
        """The topic level of commit_run: ids kept alive or dead, one snapshot per live topic."""
        sizes = dict(zip(*np.unique(topic_of[topic_of != NOISE], return_counts=True)))
        alive = [int(k) for k in sizes]
        known = {r[0] for r in c.execute(select(topics.c.id))}
        fresh = [tid for tid in alive if tid not in known]
        if fresh:
            c.execute(insert(topics), [{"id": tid, "first_run": run_id, "last_run": run_id, "first_seen": now, "last_seen": now,
                                        "status": "alive"} for tid in fresh])
        for s in range(0, len(alive), CHUNK):
            c.execute(update(topics).where(topics.c.id.in_(alive[s : s + CHUNK])).values(last_run=run_id, last_seen=now, status="alive"))
        c.execute(update(topics).where(topics.c.status == "alive", topics.c.last_run != run_id).values(status="dead"))
        n_stories: dict[int, int] = {}
        live_stories = set(np.unique(story_labels[story_labels != NOISE]).tolist())
        for sid, tid in story_topics.items():
            if sid in live_stories and tid != NOISE:
                n_stories[tid] = n_stories.get(tid, 0) + 1
        if alive:
            c.execute(insert(topic_snapshots), [
                {"run_id": run_id, "topic_id": tid, "size": int(sizes[tid]), "n_stories": n_stories.get(tid, 0),
                 "name": topic_names.get(tid, (f"topic {tid}", [], []))[0],
                 "keywords": json.dumps(topic_names.get(tid, ("", [], []))[1], ensure_ascii=False),
                 "representatives": json.dumps(topic_names.get(tid, ("", [], []))[2])}
                for tid in alive
            ])

    def record_predictions(self, run_id: int, doc_ids: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, outlier_scores: np.ndarray,
                           topic_ids: np.ndarray | None = None) -> None:
        if len(doc_ids):
            with self.engine.begin() as c:
                _insert_assignments(c, run_id, "predict", utcnow(), doc_ids, labels, probabilities, outlier_scores, topic_ids)

    def noise_pool_ids(self, run_id: int) -> np.ndarray:
        """Arrivals since run_id that prediction left as noise: candidates for a story the run could not know."""
        with self.engine.connect() as c:
            rows = c.execute(
                select(assignments.c.document_id).where(
                    assignments.c.run_id == run_id, assignments.c.assigned_by == "predict", assignments.c.cluster_id == NOISE
                ).order_by(assignments.c.document_id)
            ).scalars().all()
        return np.unique(np.asarray(rows, dtype=np.int64))

    def noise_pool_size(self, run_id: int) -> int:
        with self.engine.connect() as c:
            return c.execute(
                select(func.count()).select_from(assignments).where(
                    assignments.c.run_id == run_id, assignments.c.assigned_by == "predict", assignments.c.cluster_id == NOISE
                )
            ).scalar_one()

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

    def status(self) -> dict:
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
        errors = []
        if failed_run is not None:
            errors.append((failed_run.finished_at, f"rebuild run {failed_run.id} failed: {json.loads(failed_run.timings or '{}').get('error', '?')}"))
        if failed_file is not None:
            errors.append((failed_file.finished_at, failed_file.reason or f"{failed_file.name}: failed"))
        last_error = max(errors, key=lambda e: e[0] or datetime.min) if errors else None
        return {
            "documents": n_docs,
            "clusters": run.n_clusters if run else 0,
            "noise": run.n_noise if run else 0,
            "pending_arrivals": pending,
            "last_rebuild_run": run.id if run else None,
            "last_rebuild_at": run.finished_at.isoformat(sep=" ", timespec="seconds") if run else None,
            "rebuild_running_since": running.started_at.isoformat(sep=" ", timespec="seconds") if running else None,
            "last_error": {"at": last_error[0].isoformat(sep=" ", timespec="seconds") if last_error[0] else None, "what": last_error[1]} if last_error else None,
            "files": files,
            "files_waiting": [{"file": w.name, "state": w.state, "attempts": w.attempts, "reason": w.reason} for w in waiting],
        }

    # -- what the report reads (report_queries.py) ---------------------------------------
    def report_documents(self, run_id: int) -> ReportDocs:
        return rq.report_documents(self.engine, run_id)

    def run_stories(self, run_id: int) -> list[StoryRow]:
        """A run's stories, by id."""
        return rq.run_stories(self.engine, run_id)

    def run_topics(self, run_id: int) -> list[TopicRow]:
        """A run's topics, by id."""
        return rq.run_topics(self.engine, run_id)

    def lineage(self, run_id: int) -> Lineage:
        return rq.lineage(self.engine, run_id)

    def run_alerts(self, run_id: int, limit: int = 20) -> list[Alert]:
        """The newest alerts raised up to the end of this run's time (the next finished rebuild), newest first."""
        return rq.alerts(self.engine, until=rq.next_run_finished(self.engine, run_id), limit=limit)


# the params a Run carries as fields; the JSON column may hold more (older runs' settings), read by no one
RUN_PARAMS = ("knn_k", "min_samples", "story_min_cluster_size", "topic_min_cluster_size", "min_cluster_size_used",
              "topic_min_cluster_size_used")


def _run(row) -> Run:
    params = json.loads(row.params or "{}")
    return Run(id=int(row.id), status=row.status, started_at=row.started_at, finished_at=row.finished_at, n_documents=row.n_documents,
               n_clusters=row.n_clusters, n_noise=row.n_noise, timings=json.loads(row.timings or "{}"),
               **{f: params.get(f) for f in RUN_PARAMS})


def _driver_rows(c, sql: str, params: Sequence = (), batch: int = 50_000):
    """Plain tuples in batches straight from the driver's cursor, for reads of many rows where building
    SQLAlchemy rows cost more than the query. No type conversion is applied (a SQLite time comes back as
    its text): bind values through _bound. `{p}` in sql marks a parameter, in the driver's own spelling."""
    sql, params = sql.replace("{p}", param_mark(c.dialect)), tuple(params)
    cur = c.connection.cursor()
    try:
        cur.execute(sql, params)
        while rows := cur.fetchmany(batch):
            yield rows
    except c.dialect.loaded_dbapi.Error as exc:  # as SQLAlchemy would raise it: faults.py tells a locked or lost database by it
        raise DBAPIError.instance(sql, params, exc, c.dialect.loaded_dbapi.Error, dialect=c.dialect) from exc
    finally:
        cur.close()


def _bound(c, column, value):
    """A value as SQLAlchemy would bind it for this column (SQLite keeps times as text in one fixed format)."""
    process = bind_processor(c.dialect, column)
    return value if process is None or value is None else process(value)


def _unix_all(values) -> np.ndarray:
    """unix_seconds over many values at once: SQLite's time texts parsed by numpy in one pass, datetimes one by one."""
    if values and all(isinstance(v, str) for v in values):
        try:
            return np.array(values, dtype="datetime64[us]").astype(np.int64) / 1e6
        except ValueError:
            pass
    return np.fromiter((unix_seconds(v) for v in values), np.float64, count=len(values))


UNSET_TOPIC = -2  # topic_id NULL (runs before topics) read through _rebuild_rows_at
PROBABILITY_BANDS = (0.5, 0.9)  # band 0: probability 0 (noise); 1: under 0.5; 2: 0.5 to 0.9; 3: 0.9 and up (core members)


def probability_band(probabilities) -> np.ndarray:
    """Coarse membership strength. A rebuild rewrites a document whose band changed, not one whose
    probability moved within its band (HDBSCAN's probabilities wobble between runs on unchanged stories):
    history keeps the probability of the run that put the document in its band."""
    p = np.asarray(probabilities, np.float64)
    return np.where(p <= 0, 0, np.digitize(p, PROBABILITY_BANDS) + 1)


def _rebuild_rows_at(c, run_id: int) -> dict[str, np.ndarray]:
    """The rebuild rows run `run_id` holds as the full-row schema would have written them, sorted by document:
    each document's latest rebuild row at or before the run, unless it left after that row (assignment_exits).
    Read as driver rows and resolved in numpy (the run_assignments view says the same in SQL)."""
    sql = ("SELECT document_id, id, run_id, cluster_id, COALESCE(topic_id, {u}), probability FROM assignments "
           "WHERE assigned_by = 'rebuild' AND run_id <= {{p}}").format(u=UNSET_TOPIC)
    rows = [r for batch in _driver_rows(c, sql, [int(run_id)]) for r in batch]
    names = ("document_id", "id", "run_id", "cluster_id", "topic_id", "probability")
    if not rows:
        return {n: np.zeros(0, np.float64 if n == "probability" else np.int64) for n in names}
    cols = list(zip(*rows))
    out = {n: np.asarray(v, np.float64 if n == "probability" else np.int64) for n, v in zip(names, cols)}
    order = np.lexsort((out["id"], out["document_id"]))
    docs = out["document_id"][order]
    last = order[np.r_[docs[1:] != docs[:-1], True]]  # each document's newest row
    out = {n: v[last] for n, v in out.items()}
    exits = [r for batch in _driver_rows(c, "SELECT document_id, MAX(run_id) FROM assignment_exits WHERE run_id <= {p} GROUP BY document_id",
                                         [int(run_id)]) for r in batch]
    if exits:
        ex_doc, ex_run = (np.asarray(v, np.int64) for v in zip(*exits))
        at = np.searchsorted(out["document_id"], ex_doc)
        found = at < len(out["document_id"])
        found[found] &= out["document_id"][at[found]] == ex_doc[found]
        gone = np.zeros(len(out["document_id"]), bool)
        gone[at[found]] = ex_run[found] > out["run_id"][at[found]]
        out = {n: v[~gone] for n, v in out.items()}
    return out


def _changed_rows(c, run_id: int, doc_ids, labels, topics, probabilities, every_row: bool) -> np.ndarray:
    """Which of a rebuild's documents get a row (a mask over doc_ids), and the exits of the previous run's
    documents this run left out, written here. A document gets a row unless the previous done run held it
    with the same story, topic and probability band and no arrival row was written for it since."""
    doc_ids = np.asarray(doc_ids, np.int64)
    prev = c.execute(select(func.max(runs.c.id)).where(runs.c.status == "done", runs.c.id < run_id)).scalar_one()
    if prev is None:
        return np.ones(len(doc_ids), bool)
    held = _rebuild_rows_at(c, prev)
    held_docs = held["document_id"]
    left = held_docs[~np.isin(held_docs, doc_ids)]
    if len(left):
        bulk_insert(c, assignment_exits, {"document_id": left.tolist()}, same={"run_id": int(run_id)})
    if every_row or not len(held_docs):
        return np.ones(len(doc_ids), bool)
    at = np.minimum(np.searchsorted(held_docs, doc_ids), len(held_docs) - 1)
    same = held_docs[at] == doc_ids
    topics = np.asarray(topics, np.int64)
    same &= (held["cluster_id"][at] == np.asarray(labels, np.int64)) & (held["topic_id"][at] == topics)
    same &= probability_band(held["probability"][at]) == probability_band(probabilities)
    # an arrival row written after the held row (a revised document placed again) is the document's latest: write over it
    placed = [r for batch in _driver_rows(c, "SELECT document_id, MAX(id) FROM assignments WHERE assigned_by = 'predict' AND id > {p} "
                                             "GROUP BY document_id", [int(held["id"].min())]) for r in batch]
    if placed:
        p_doc, p_id = (np.asarray(v, np.int64) for v in zip(*placed))
        newer = dict(zip(p_doc.tolist(), p_id.tolist()))
        for i in np.flatnonzero(same):
            if newer.get(int(doc_ids[i]), -1) > held["id"][at[i]]:
                same[i] = False
    return ~same


def _insert_assignments(c, run_id: int, assigned_by: str, at: datetime, doc_ids, labels, probabilities, outlier_scores, topic_ids) -> None:
    """One assignments row per document, the same shape for a rebuild and for arrivals placed between rebuilds."""
    topic_ids = topic_ids if topic_ids is not None else np.full(len(doc_ids), NOISE, np.int64)
    bulk_insert(c, assignments, {
        "document_id": np.asarray(doc_ids, np.int64).tolist(), "cluster_id": np.asarray(labels, np.int64).tolist(),
        "topic_id": np.asarray(topic_ids, np.int64).tolist(), "probability": np.asarray(probabilities, np.float64).tolist(),
        "outlier_score": np.asarray(outlier_scores, np.float64).tolist(),
    }, same={"run_id": int(run_id), "assigned_by": assigned_by, "assigned_at": at})


class AlertStore:
    """The alert tables: what each story has been announced as, and the alerts themselves."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def story_times(self, run_id: int, since: datetime | None) -> tuple[np.ndarray, np.ndarray]:
        """(story id, news time in unix seconds) of every headline the run clustered or placed since it.

        Read after every rebuild and every file, so read as plain driver rows with the times turned
        into seconds in one numpy pass (SQLAlchemy rows with a datetime parsed per row cost 3x more).
        The run's assignments and the window's documents are read apart and joined by id here: the
        join in SQL looked each of a run's rows up in documents by a secondary key (1M documents:
        4.6 s, apart 2.1 s)."""
        when = "COALESCE(published_at, ingested_at)"
        doc_sql, doc_params = f"SELECT id, {when} FROM documents", []
        if since is not None:
            doc_sql += f" WHERE {when} >= {{p}}"
        with self.engine.connect() as c:
            if since is not None:
                doc_params = [_bound(c, documents.c.published_at, since)]
            held = _rebuild_rows_at(c, run_id)
            placed = [r for batch in _driver_rows(c, "SELECT document_id, cluster_id FROM assignments WHERE run_id = {p} "
                                                  "AND assigned_by = 'predict' AND cluster_id >= 0", [int(run_id)]) for r in batch]
            member_doc, story = held["document_id"][held["cluster_id"] >= 0], held["cluster_id"][held["cluster_id"] >= 0]
            if placed:
                member_doc = np.r_[member_doc, np.asarray([r[0] for r in placed], np.int64)]
                story = np.r_[story, np.asarray([r[1] for r in placed], np.int64)]
            dated = [r for batch in _driver_rows(c, doc_sql, doc_params) for r in batch] if len(member_doc) else []
            # a row dated far ahead (2999) has no news time: its ingest time must not stand in, in alerts or their times
            undated_future = {int(r[0]) for r in c.execute(select(documents.c.id).where(
                documents.c.published_at.is_(None), documents.c.extra.contains(FUTURE_KEY)))} if dated else set()
        if undated_future:
            dated = [r for r in dated if int(r[0]) not in undated_future]
        if not len(member_doc) or not dated:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        doc_ids, times = zip(*dated)
        doc_ids = np.asarray(doc_ids, np.int64)
        order = np.argsort(doc_ids, kind="stable")
        sorted_ids = doc_ids[order]
        at = np.minimum(np.searchsorted(sorted_ids, member_doc), len(sorted_ids) - 1)
        inside = sorted_ids[at] == member_doc  # documents outside the window drop out, as the join's filter did
        return story[inside], _unix_all(list(times))[order[at[inside]]]

    def born_stories(self, run_id: int) -> set[int]:
        """Stories born in a run out of nothing: a part split off an older story is not news breaking."""
        with self.engine.connect() as c:
            return {int(r[0]) for r in c.execute(select(cluster_events.c.cluster_id).where(
                cluster_events.c.run_id == run_id, cluster_events.c.level == "story", cluster_events.c.kind == "born",
                cluster_events.c.parents == "[]"))}

    def earlier_homes(self, run_id: int, story_ids: list[int], runs_back: int = 3) -> dict[int, dict[int, int]]:
        """story id -> {story of the `runs_back` runs before: how many of its members (this run's) sat there}."""
        if not story_ids:
            return {}
        out: dict[int, dict[int, int]] = {}
        with self.engine.connect() as c:
            before = [r[0] for r in c.execute(select(runs.c.id).where(runs.c.status == "done", runs.c.id < run_id)
                                              .order_by(runs.c.id.desc()).limit(runs_back))]
            if not before:
                return {}
            # this run's members of the asked stories: all written this run (a story new this run changed every member's
            # row); what they held before is each one's latest rebuild row at or before each earlier run, unless it left
            # since (rebuilds write changed rows only: a member that sat still in an announced story has one old row)
            members = dict(c.execute(select(assignments.c.document_id, assignments.c.cluster_id).where(
                assignments.c.run_id == run_id, assignments.c.assigned_by == "rebuild",
                assignments.c.cluster_id.in_([int(x) for x in story_ids]))).all())
            if not members:
                return {}
            docs = sorted(int(d) for d in members)
            rows, exits = [], []
            for start in range(0, len(docs), 5_000):
                chunk = docs[start : start + 5_000]
                rows += c.execute(select(assignments.c.document_id, assignments.c.run_id, assignments.c.cluster_id).where(
                    assignments.c.document_id.in_(chunk), assignments.c.assigned_by == "rebuild", assignments.c.run_id <= max(before))
                    .order_by(assignments.c.document_id, assignments.c.id)).all()
                exits += c.execute(select(assignment_exits.c.document_id, assignment_exits.c.run_id).where(
                    assignment_exits.c.document_id.in_(chunk), assignment_exits.c.run_id <= max(before))).all()
        left: dict[int, list[int]] = {}
        for d, r in exits:
            left.setdefault(int(d), []).append(int(r))
        history: dict[int, list[tuple[int, int]]] = {}
        for d, r, cid in rows:
            history.setdefault(int(d), []).append((int(r), int(cid)))
        seen: dict[tuple[int, int], set[int]] = {}
        for d, held in history.items():
            for r in before:
                at = [(wr, cid) for wr, cid in held if wr <= r]
                if not at:
                    continue
                wr, cid = at[-1]
                if any(wr < x <= r for x in left.get(d, ())) or cid < 0 or cid == int(members[d]):
                    continue
                seen.setdefault((int(members[d]), cid), set()).add(d)
        for (story, earlier), ds in seen.items():
            out.setdefault(story, {})[earlier] = len(ds)
        return out

    def first_done_run(self) -> int | None:
        with self.engine.connect() as c:
            return c.execute(select(func.min(runs.c.id)).where(runs.c.status == "done")).scalar_one()

    def story_cards(self, run_id: int) -> dict[int, dict]:
        """Title, size and topic of each story of a run."""
        q = (select(cluster_snapshots.c.cluster_id, cluster_snapshots.c.name, cluster_snapshots.c.size, cluster_snapshots.c.topic_id,
                    topic_snapshots.c.name.label("topic_name"))
             .select_from(cluster_snapshots.outerjoin(topic_snapshots, (topic_snapshots.c.run_id == cluster_snapshots.c.run_id)
                                                      & (topic_snapshots.c.topic_id == cluster_snapshots.c.topic_id)))
             .where(cluster_snapshots.c.run_id == run_id))
        with self.engine.connect() as c:
            return {int(r.cluster_id): {"title": r.name, "size": int(r.size), "topic_id": r.topic_id, "topic_name": r.topic_name}
                    for r in c.execute(q)}

    def states(self) -> dict[int, tuple[bool, bool]]:
        """story id -> (announced as new, surging now)."""
        with self.engine.connect() as c:
            return {int(r.story_id): (bool(r.announced_new), bool(r.surging)) for r in c.execute(select(story_alert_state))}

    def record(self, raised: list[dict], states: dict[int, tuple[bool, bool]]) -> list[dict]:
        """The alerts raised and every changed state, in one transaction; returns the alerts with their ids."""
        now = utcnow()
        out = []
        with self.engine.begin() as c:
            if states:  # one statement for all of them: the first rebuild of a big home sets tens of thousands
                upsert = insert_for(c.dialect.name, story_alert_state)
                upsert = upsert.on_conflict_do_update(index_elements=["story_id"], set_={
                    "announced_new": upsert.excluded.announced_new, "surging": upsert.excluded.surging, "changed_at": upsert.excluded.changed_at})
                c.execute(upsert, [{"story_id": int(sid), "announced_new": int(announced), "surging": int(surging), "changed_at": now}
                                   for sid, (announced, surging) in states.items()])
            for a in raised:
                row = {**a, "at": now, "details": json.dumps(a.get("details", {}))}
                alert_id = c.execute(insert(alerts).values(**{k: v for k, v in row.items() if k != "topic_name"})).inserted_primary_key[0]
                out.append({**a, "id": int(alert_id), "at": now})
        return out

    def latest(self, limit: int = 100) -> list[dict]:
        with self.engine.connect() as c:
            rows = c.execute(text("SELECT * FROM alert_feed ORDER BY id DESC LIMIT :n"), {"n": limit}).mappings().all()
        return [dict(r) for r in rows]


class StoryReader:
    """What `newsclust search`, `story` and `topic` show: plain dicts, newest first where it matters."""

    def __init__(self, engine: Engine):
        self.engine = engine

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


class Coordination:
    """Claims on inbox files and leases on roles, through the database every worker shares.

    Both are one conditional upsert: the row is taken when absent, expired, or (claims) finished; the
    database decides the race, so two workers never both believe they hold the same file or lease.
    """

    def __init__(self, engine: Engine):
        self.engine = engine

    def claim_file(self, name: str, worker: str, lease_s: float) -> bool:
        now = utcnow()
        stale = now - timedelta(seconds=lease_s)
        with self.engine.begin() as c:
            stmt = insert_for(c.dialect.name, file_claims).values(name=name, worker=worker, claimed_at=now, heartbeat_at=now, done=0)
            stmt = stmt.on_conflict_do_update(
                index_elements=["name"], set_={"worker": worker, "claimed_at": now, "heartbeat_at": now, "done": 0},
                where=(file_claims.c.heartbeat_at < stale) | (file_claims.c.done == 1) | (file_claims.c.worker == worker))
            c.execute(stmt)
            holder = c.execute(select(file_claims.c.worker).where(file_claims.c.name == name)).scalar_one()
        return holder == worker

    def heartbeat(self, names: Sequence[str], worker: str) -> None:
        if names:
            with self.engine.begin() as c:
                c.execute(update(file_claims).where(file_claims.c.name.in_(list(names)), file_claims.c.worker == worker)
                          .values(heartbeat_at=utcnow()))

    def finish_claim(self, name: str, worker: str) -> None:
        with self.engine.begin() as c:
            c.execute(update(file_claims).where(file_claims.c.name == name, file_claims.c.worker == worker).values(done=1))

    def take_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        now = utcnow()
        until = now + timedelta(seconds=ttl_s)
        with self.engine.begin() as c:
            stmt = insert_for(c.dialect.name, leases).values(name=name, holder=holder, expires_at=until)
            stmt = stmt.on_conflict_do_update(index_elements=["name"], set_={"holder": holder, "expires_at": until},
                                              where=(leases.c.expires_at < now) | (leases.c.holder == holder))
            c.execute(stmt)
            return c.execute(select(leases.c.holder).where(leases.c.name == name)).scalar_one() == holder

    def release_lease(self, name: str, holder: str) -> None:
        with self.engine.begin() as c:
            c.execute(update(leases).where(leases.c.name == name, leases.c.holder == holder).values(expires_at=datetime(1970, 1, 1)))
