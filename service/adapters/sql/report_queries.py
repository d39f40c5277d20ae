"""Every read the report needs, as functions over an Engine returning plain data (no SQLAlchemy rows leave here).

The page code (`service/report/`) reads them through the StoryReads port (reads.py) and
imports nothing of SQLAlchemy: it gets columnar numpy arrays for the documents (100k rows in a fraction of
a second) and small dataclasses (service/domain.py) for stories, topics, events and alerts. Queries stay
plain SQL-92 where that is easy; times come back as numpy datetime64[s], NaT where NULL, whether the driver
returns strings (SQLite) or datetimes (others).
"""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import urlsplit

import numpy as np
from sqlalchemy import Engine, inspect, text

from ...domain import FUTURE_KEY, Alert, ChangeEvent, Lineage, ReportDocs, StoryRow, TopicRow
from ...ports import HeldLabels
from ...sorted_keys import find_sorted
from .engine import driver_rows
from .runs import UNSET_TOPIC, rebuild_rows_at

# the columns of a CSV that name the outlet, in the order they are trusted (kept in documents.extra)
SOURCE_KEYS = ("source", "publisher", "outlet", "site", "feed", "domain", "source_name", "author")


def to_datetime64(values) -> np.ndarray:
    """Strings (SQLite), datetimes or None -> datetime64[s] with NaT for None."""
    out = np.array([v if v is not None else "NaT" for v in values], dtype="datetime64[s]") if len(values) else np.array([], "datetime64[s]")
    return out.astype("datetime64[s]")


def report_documents(engine: Engine, run_id: int) -> ReportDocs:
    """The run's documents: its rebuild rows (runs.rebuild_rows_at: each document's latest rebuild row at or before
    the run, resolved in numpy), then the arrivals placed under it (the latest placement wins), joined to their
    documents' rows. The same rows the run_assignments view gives, without its correlated subquery per row: at
    100k documents the view's read took 0.7-1.5 s of the page a rebuild waits for."""
    with engine.connect() as c:
        held = rebuild_rows_at(c, run_id)
        placed: dict[int, tuple] = {}
        for batch in driver_rows(c, "SELECT document_id, cluster_id, topic_id, probability FROM assignments "
                                    "WHERE run_id = {p} AND assigned_by = 'predict' ORDER BY id", [int(run_id)]):
            for r in batch:
                placed[int(r[0])] = r  # arrivals placed later win
        ids = held["document_id"]
        story, topic, probability = held["cluster_id"], np.where(held["topic_id"] == UNSET_TOPIC, -1, held["topic_id"]), held["probability"]
        predicted = np.zeros(len(ids), bool)
        if placed:
            p_ids = np.fromiter(placed, np.int64, len(placed))
            rows = list(placed.values())
            p_story = np.array([r[1] for r in rows], np.int64)
            p_topic = np.array([-1 if r[2] is None else r[2] for r in rows], np.int64)
            p_prob = np.array([r[3] for r in rows], np.float64)
            keep = ~np.isin(ids, p_ids)
            ids = np.concatenate([ids[keep], p_ids])
            story, topic = np.concatenate([story[keep], p_story]), np.concatenate([topic[keep], p_topic])
            probability = np.concatenate([probability[keep], p_prob])
            predicted = np.concatenate([predicted[keep], np.ones(len(p_ids), bool)])
            order = np.argsort(ids, kind="stable")
            ids, story, topic, probability, predicted = ids[order], story[order], topic[order], probability[order], predicted[order]
        docs = [r for batch in driver_rows(c, "SELECT id, title, url, published_at, ingested_at, extra FROM documents ORDER BY id")
                for r in batch]
    doc_ids = np.fromiter((r[0] for r in docs), np.int64, len(docs))
    at, found = find_sorted(doc_ids, ids)  # as the view's join: rows of a document gone are left out
    ids, story, topic, probability, predicted, at = ids[found], story[found], topic[found], probability[found], predicted[found], at[found]
    rows = [docs[i] for i in at.tolist()]
    return ReportDocs(
        ids=ids.astype(np.int64),
        story=story.astype(np.int64),
        topic=topic.astype(np.int64),
        probability=probability.astype(np.float32),
        predicted=predicted,
        published=to_datetime64([r[3] for r in rows]),
        ingested=to_datetime64([r[4] for r in rows]),
        titles=[r[1] or "" for r in rows],
        urls=[r[2] for r in rows],
        sources=[source_of(r[5], r[2]) for r in rows],
        future=to_datetime64([future_of(r[5]) for r in rows]),
    )


def future_of(extra: str | None) -> str | None:
    """The far-future time a row claimed (ingest keeps it in extra, not as its published time), or None."""
    if not extra or FUTURE_KEY not in extra:
        return None
    try:
        value = json.loads(extra).get(FUTURE_KEY)
        return str(np.datetime64(value, "s")) if value else None
    except (ValueError, AttributeError, TypeError):
        return None


def source_of(extra: str | None, url: str | None) -> str | None:
    """The outlet: a source-like column of the CSV when there was one, else the url's host."""
    if extra and extra not in ("{}", "null"):
        try:
            data = json.loads(extra)
        except ValueError:
            data = None
        if isinstance(data, dict):
            lowered = {str(k).lower(): v for k, v in data.items()}
            for key in SOURCE_KEYS:
                v = lowered.get(key)
                if isinstance(v, str) and v.strip():
                    return v.strip()
    if url:
        host = urlsplit(url).hostname
        if host:
            return host.removeprefix("www.")
    return None


def run_stories(engine: Engine, run_id: int) -> list[StoryRow]:
    q = text("SELECT cluster_id, topic_id, size, name, keywords FROM cluster_snapshots WHERE run_id = :run ORDER BY cluster_id")
    with engine.connect() as c:
        return [StoryRow(int(r[0]), -1 if r[1] is None else int(r[1]), int(r[2]), r[3] or "", _json_list(r[4]))
                for r in c.execute(q, {"run": run_id})]


def run_topics(engine: Engine, run_id: int) -> list[TopicRow]:
    q = text("SELECT topic_id, size, n_stories, name, keywords FROM topic_snapshots WHERE run_id = :run ORDER BY topic_id")
    with engine.connect() as c:
        return [TopicRow(int(r[0]), int(r[1]), int(r[2]), r[3] or "", _json_list(r[4])) for r in c.execute(q, {"run": run_id})]


def previous_run_id(engine: Engine, run_id: int) -> int | None:
    with engine.connect() as c:
        return c.execute(text("SELECT MAX(id) FROM runs WHERE status = 'done' AND id < :r"), {"r": run_id}).scalar_one()


def next_run_finished(engine: Engine, run_id: int) -> datetime | None:
    """When the next finished rebuild after this one ended (None for the latest): the end of this run's page's time."""
    with engine.connect() as c:
        v = c.execute(text("SELECT MIN(finished_at) FROM runs WHERE status = 'done' AND id > :r"), {"r": run_id}).scalar_one()
    return None if v is None else _as_datetime(v)


def lineage(engine: Engine, run_id: int, held: HeldLabels | None = None) -> Lineage:
    """Document flows between the previous rebuild's stories and this one's, and the changes recorded by this run.
    held: (document ids, story ids) by run id for runs the caller holds in memory (a rebuild's page: 0.4-1.2 s less
    at 100k documents than reading both runs' rows back)."""
    prev = previous_run_id(engine, run_id)
    with engine.connect() as c:
        events = [
            ChangeEvent(r[0] or "story", r[1], int(r[2]), [int(x) for x in _json_list(r[3])], [int(x) for x in _json_list(r[4])])
            for r in c.execute(text(
                "SELECT level, kind, cluster_id, parents, children FROM cluster_events "
                "WHERE run_id = :r AND kind IN ('split', 'merged', 'born', 'died', 'moved') ORDER BY id"), {"r": run_id})
        ]
        if prev is None:
            return Lineage(None, [], events, {}, {})
        flows = story_flows(*(held[r] if held and r in held else _story_labels(c, r) for r in (prev, run_id)))
        names, topics = {}, {}
        for cid, name, tid in c.execute(text("SELECT cluster_id, name, topic_id FROM cluster_snapshots WHERE run_id = :p"), {"p": prev}):
            names[int(cid)] = name or ""
            topics[int(cid)] = -1 if tid is None else int(tid)
        topic_names = {int(t): n or "" for t, n in c.execute(text("SELECT topic_id, name FROM topic_snapshots WHERE run_id = :p"), {"p": prev})}
    flows.sort(key=lambda f: -f[2])
    return Lineage(prev, flows, events, names, topics, topic_names)


def _story_labels(c, run_id: int) -> tuple[np.ndarray, np.ndarray]:
    held = rebuild_rows_at(c, run_id)
    return held["document_id"], held["cluster_id"]


def story_flows(before: tuple[np.ndarray, np.ndarray], after: tuple[np.ndarray, np.ndarray]) -> list[tuple[int, int, int]]:
    """(story before, story after, documents) over the documents both rebuilds held, each as (document ids, story
    ids), noise to noise left out; by story pair. Counted in numpy: the same flows as a self-join of the
    run_assignments view, which took 0.7-1.5 s at 100k documents."""
    _, i, j = np.intersect1d(before[0], after[0], assume_unique=True, return_indices=True)
    a, b = np.asarray(before[1])[i], np.asarray(after[1])[j]
    keep = ~((a == -1) & (b == -1))
    if not keep.any():
        return []
    pairs, counts = np.unique(np.stack([a[keep], b[keep]], axis=1), axis=0, return_counts=True)
    return [(int(p), int(n), int(k)) for (p, n), k in zip(pairs.tolist(), counts.tolist())]


def alerts(engine: Engine, until: datetime | None = None, limit: int = 20) -> list[Alert]:
    """The newest alerts raised up to `until` (all when None); empty when this database has no alerts table yet."""
    if not inspect(engine).has_table("alerts"):
        return []
    has_feed = "alert_feed" in inspect(engine).get_view_names()
    source = "alert_feed" if has_feed else "(SELECT a.*, NULL AS topic_name FROM alerts a)"
    where = "WHERE at <= :until" if until is not None else ""
    q = text(f"SELECT at, kind, story_id, topic_id, topic_name, title, size, recent, stream_time FROM {source} f "
             f"{where} ORDER BY at DESC, id DESC LIMIT :limit")
    params = {"limit": limit, **({"until": until.isoformat(sep=" ")} if until is not None else {})}
    with engine.connect() as c:
        rows = c.execute(q, params).all()
    return [Alert(_as_datetime(r[0]), r[1], int(r[2]), None if r[3] is None else int(r[3]), r[4], r[5] or "", int(r[6]), int(r[7]),
                  to_datetime64([r[8]])[0]) for r in rows]


def _json_list(value) -> list:
    if not value:
        return []
    data = json.loads(value) if isinstance(value, str) else value
    return list(data) if isinstance(data, list) else []


def _as_datetime(v) -> datetime | None:
    if v is None or isinstance(v, datetime):
        return v
    return datetime.fromisoformat(str(v))
