"""Rebuilds and placements: runs, their stories and topics, assignments (changed rows only), events
(port: ports.RunHistory)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

import numpy as np
from sqlalchemy import Engine, func, insert, select, update

from ...domain import NOISE, ClusterEvent, Run, RunLevels, utcnow
from ...ports import SavedName
from ...sorted_keys import find_sorted
from .dialect import bulk_insert
from .engine import CHUNK, driver_rows
from .tables import (assignment_exits, assignments, cluster_events, cluster_snapshots, clusters, documents, runs, story_drift_checks, topic_snapshots,
                     topics)


class SqlRunHistory:
    def __init__(self, engine: Engine, every_row: bool = False):
        """every_row: write a rebuild row for every document, changed or not (the full-row schema the views
        are checked against in the tests; the views answer the same either way)."""
        self.engine = engine
        self.every_row = every_row

    def abandon_running_runs(self, reason: str) -> int:
        """Runs left 'running' by a stop or a kill are failed: a rebuild commits in one transaction, so the
        previous run's clustering is still whole. A rebuild that commits after this call still ends 'done'."""
        with self.engine.begin() as c:
            return c.execute(update(runs).where(runs.c.status == "running").values(
                status="failed", finished_at=utcnow(), timings=json.dumps({"error": reason}))).rowcount

    # -- runs --------------------------------------------------------------------------
    def arrival_counts(self) -> tuple[int, int]:
        """(documents, documents ingested since the latest finished rebuild started): the schedule's two counts, on
        every scheduler tick. Three statements (100k documents on SQLite: 0.3 ms, where the whole status it read
        before took 8 statements and 1.0 ms; one statement with COUNT ... FILTER scanned every row: 8 ms)."""
        with self.engine.connect() as c:
            total = c.execute(select(func.count()).select_from(documents)).scalar_one()
            started = c.execute(select(runs.c.started_at).where(runs.c.status == "done").order_by(runs.c.id.desc()).limit(1)).scalar()
            since = total if started is None else c.execute(
                select(func.count()).select_from(documents).where(documents.c.ingested_at >= started)).scalar_one()
        return int(total), int(since)

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

    def next_story_id(self) -> int:
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
        levels = self.run_levels(run_id)
        return levels.doc_ids, levels.stories

    def run_topic_labels(self, run_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(document ids, persistent topic ids) a rebuild gave, sorted by document id (empty for runs before topics)."""
        levels = self.run_levels(run_id)
        return levels.topic_doc_ids, levels.topics

    def run_levels(self, run_id: int) -> RunLevels:
        """Both levels from one resolution of the run's rows: the rebuild reads the last run's stories and topics
        together (two reads of rebuild_rows_at cost about 1.2 s each at 100k under profile)."""
        with self.engine.connect() as c:
            held = rebuild_rows_at(c, run_id)
        docs, topics = held["document_id"], held["topic_id"]
        has_topic = topics != UNSET_TOPIC
        return RunLevels(docs, held["cluster_id"], docs[has_topic], topics[has_topic], run_id=int(run_id), held=held)

    def placed_labels(self, run_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(document ids, persistent cluster ids or NOISE) of the arrivals placed under a run, sorted by document id."""
        sql = "SELECT document_id, cluster_id FROM assignments WHERE run_id = {p} AND assigned_by = {p} ORDER BY document_id"
        with self.engine.connect() as c:  # plain driver rows
            rows = [r for batch in driver_rows(c, sql, (int(run_id), "predict")) for r in batch]
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
        names: dict[int, SavedName],
        events: Iterable[ClusterEvent],
        timings: dict[str, float],
        params: dict,
        topics: np.ndarray | None = None,
        story_topics: dict[int, int] | None = None,
        topic_names: dict[int, SavedName] | None = None,
        drift_checks: list[dict] | None = None,
        previous: RunLevels | None = None,
    ) -> None:
        """Everything a rebuild produced, in one transaction: readers see the old run or the whole new one.
        previous: run_levels of the last done run as the rebuild read them; the rows it holds are taken from it, not
        read again (a done run's rebuild rows never change; 100k documents: 0.3 s of the commit), when it is that run."""
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
            write, kept_from = _changed_rows(c, run_id, doc_ids, labels, topic_of, probabilities, self.every_row, previous)
            _insert_assignments(c, run_id, "rebuild", now, doc_ids[write], labels[write], probabilities[write], outlier_scores[write],
                                topic_of[write])
            written_from = c.execute(select(func.min(assignments.c.id)).where(
                assignments.c.run_id == run_id, assignments.c.assigned_by == "rebuild")).scalar_one() if write.any() else None
            held_from = min((v for v in (kept_from, written_from) if v is not None), default=None)
            c.execute(update(runs).where(runs.c.id == run_id).values(rebuild_rows_from=held_from))
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
                       topic_names: dict[int, SavedName], story_labels: np.ndarray) -> None:
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


RUN_PARAMS = ("knn_k", "min_samples", "story_min_cluster_size", "topic_min_cluster_size", "min_cluster_size_used",
              "topic_min_cluster_size_used")


def _run(row) -> Run:
    params = json.loads(row.params or "{}")
    return Run(id=int(row.id), status=row.status, started_at=row.started_at, finished_at=row.finished_at, n_documents=row.n_documents,
               n_stories=row.n_clusters, n_noise=row.n_noise, timings=json.loads(row.timings or "{}"),
               **{f: params.get(f) for f in RUN_PARAMS})




UNSET_TOPIC = -2  # topic_id NULL (runs before topics) read through rebuild_rows_at
PROBABILITY_BANDS = (0.5, 0.9)  # band 0: probability 0 (noise); 1: under 0.5; 2: 0.5 to 0.9; 3: 0.9 and up (core members)


def probability_band(probabilities) -> np.ndarray:
    """Coarse membership strength. A rebuild rewrites a document whose band changed, not one whose
    probability moved within its band (HDBSCAN's probabilities wobble between runs on unchanged stories):
    history keeps the probability of the run that put the document in its band."""
    p = np.asarray(probabilities, np.float64)
    return np.where(p <= 0, 0, np.digitize(p, PROBABILITY_BANDS) + 1)


def rebuild_rows_at(c, run_id: int, from_start: bool = False) -> dict[str, np.ndarray]:
    """The rebuild rows run `run_id` holds as the full-row schema would have written them, sorted by document:
    each document's latest rebuild row at or before the run, unless it left after that row (assignment_exits).
    Read as driver rows and resolved in numpy (the run_assignments view says the same in SQL).

    Read from the run's rebuild_rows_from (the smallest id among the rows it holds, set at its commit): rows before
    it are documents that left the window, or rows a newer one replaced, so the read follows the window, not the
    whole history; exits only from the run of that row on (a held document's exit is later than its row).
    from_start: read every row as before (the same answer; tests compare the two)."""
    start = None if from_start else c.execute(select(runs.c.rebuild_rows_from).where(runs.c.id == run_id)).scalar_one_or_none()
    start_run = 0 if start is None else c.execute(select(assignments.c.run_id).where(assignments.c.id == start)).scalar_one_or_none() or 0
    sql = ("SELECT document_id, id, run_id, cluster_id, COALESCE(topic_id, {u}), probability FROM assignments "
           "WHERE id >= {{p}} AND assigned_by = 'rebuild' AND run_id <= {{p}}").format(u=UNSET_TOPIC)
    rows = [r for batch in driver_rows(c, sql, [int(start or 0), int(run_id)]) for r in batch]
    names = ("document_id", "id", "run_id", "cluster_id", "topic_id", "probability")
    if not rows:
        return {n: np.zeros(0, np.float64 if n == "probability" else np.int64) for n in names}
    cols = list(zip(*rows))
    out = {n: np.asarray(v, np.float64 if n == "probability" else np.int64) for n, v in zip(names, cols)}
    order = np.lexsort((out["id"], out["document_id"]))
    docs = out["document_id"][order]
    last = order[np.r_[docs[1:] != docs[:-1], True]]  # each document's newest row
    out = {n: v[last] for n, v in out.items()}
    exits = [r for batch in driver_rows(c, "SELECT document_id, MAX(run_id) FROM assignment_exits WHERE run_id >= {p} AND run_id <= {p} "
                                            "GROUP BY document_id", [int(start_run), int(run_id)]) for r in batch]
    if exits:
        ex_doc, ex_run = (np.asarray(v, np.int64) for v in zip(*exits))
        at, found = find_sorted(out["document_id"], ex_doc)
        gone = np.zeros(len(out["document_id"]), bool)
        gone[at[found]] = ex_run[found] > out["run_id"][at[found]]
        out = {n: v[~gone] for n, v in out.items()}
    return out


def _changed_rows(c, run_id: int, doc_ids, labels, topics, probabilities, every_row: bool,
                  previous: RunLevels | None = None) -> tuple[np.ndarray, int | None]:
    """Which of a rebuild's documents get a row (a mask over doc_ids) and the smallest row id among the documents
    that keep their previous row (None: none do); the exits of the previous run's documents this run left out are
    written here. A document gets a row unless the previous done run held it with the same story, topic and
    probability band and no arrival row was written for it since. previous: the previous run's levels as run_levels
    read them, whose rows are used when they are that run's (else read here)."""
    doc_ids = np.asarray(doc_ids, np.int64)
    prev = c.execute(select(func.max(runs.c.id)).where(runs.c.status == "done", runs.c.id < run_id)).scalar_one()
    if prev is None:
        return np.ones(len(doc_ids), bool), None
    held = previous.held if previous is not None and previous.run_id == prev and previous.held is not None else rebuild_rows_at(c, prev)
    held_docs = held["document_id"]
    left = held_docs[~np.isin(held_docs, doc_ids)]
    if len(left):
        bulk_insert(c, assignment_exits, {"document_id": left.tolist()}, same={"run_id": int(run_id)})
    if every_row or not len(held_docs):
        return np.ones(len(doc_ids), bool), None
    at, same = find_sorted(held_docs, doc_ids)
    topics = np.asarray(topics, np.int64)
    same &= (held["cluster_id"][at] == np.asarray(labels, np.int64)) & (held["topic_id"][at] == topics)
    same &= probability_band(held["probability"][at]) == probability_band(probabilities)
    # an arrival row written after the held row (a revised document placed again) is the document's latest: write over it
    placed = [r for batch in driver_rows(c, "SELECT document_id, MAX(id) FROM assignments WHERE assigned_by = 'predict' AND id > {p} "
                                             "GROUP BY document_id", [int(held["id"].min())]) for r in batch]
    if placed:
        p_doc, p_id = (np.asarray(v, np.int64) for v in zip(*placed))
        newer = dict(zip(p_doc.tolist(), p_id.tolist()))
        for i in np.flatnonzero(same):
            if newer.get(int(doc_ids[i]), -1) > held["id"][at[i]]:
                same[i] = False
    return ~same, (int(held["id"][at[same]].min()) if same.any() else None)


def _insert_assignments(c, run_id: int, assigned_by: str, at: datetime, doc_ids, labels, probabilities, outlier_scores, topic_ids) -> None:
    """One assignments row per document, the same shape for a rebuild and for arrivals placed between rebuilds."""
    topic_ids = topic_ids if topic_ids is not None else np.full(len(doc_ids), NOISE, np.int64)
    bulk_insert(c, assignments, {
        "document_id": np.asarray(doc_ids, np.int64).tolist(), "cluster_id": np.asarray(labels, np.int64).tolist(),
        "topic_id": np.asarray(topic_ids, np.int64).tolist(), "probability": np.asarray(probabilities, np.float64).tolist(),
        "outlier_score": np.asarray(outlier_scores, np.float64).tolist(),
    }, same={"run_id": int(run_id), "assigned_by": assigned_by, "assigned_at": at})


