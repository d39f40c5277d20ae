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

# the columns of a CSV that name the outlet, in the order they are trusted (kept in documents.extra)
SOURCE_KEYS = ("source", "publisher", "outlet", "site", "feed", "domain", "source_name", "author")


def to_datetime64(values) -> np.ndarray:
    """Strings (SQLite), datetimes or None -> datetime64[s] with NaT for None."""
    out = np.array([v if v is not None else "NaT" for v in values], dtype="datetime64[s]") if len(values) else np.array([], "datetime64[s]")
    return out.astype("datetime64[s]")


def report_documents(engine: Engine, run_id: int) -> ReportDocs:
    q = text(
        """
        SELECT a.document_id, a.cluster_id, a.topic_id, a.probability, a.assigned_by,
               d.title, d.url, d.published_at, d.ingested_at, d.extra
        FROM run_assignments a JOIN documents d ON d.id = a.document_id
        WHERE a.run_id = :run ORDER BY CASE WHEN a.assigned_by = 'rebuild' THEN 0 ELSE 1 END, a.assignment_id
        """
    )
    latest: dict[int, tuple] = {}
    with engine.connect() as c:
        # the driver's own tuples: at 100k documents SQLAlchemy's rows cost 0.5 s more than the query (the values are the
        # same: a text() query converts nothing)
        for row in c.execute(q, {"run": run_id}).cursor.fetchall():
            latest[row[0]] = row  # arrivals placed after the rebuild come later and win
    rows = list(latest.values())
    rows.sort(key=lambda r: r[0])
    return ReportDocs(
        ids=np.array([r[0] for r in rows], np.int64),
        story=np.array([r[1] for r in rows], np.int64),
        topic=np.array([-1 if r[2] is None else r[2] for r in rows], np.int64),
        probability=np.array([r[3] for r in rows], np.float32),
        predicted=np.array([r[4] == "predict" for r in rows], bool),
        published=to_datetime64([r[7] for r in rows]),
        ingested=to_datetime64([r[8] for r in rows]),
        titles=[r[5] or "" for r in rows],
        urls=[r[6] for r in rows],
        sources=[source_of(r[9], r[6]) for r in rows],
        future=to_datetime64([future_of(r[9]) for r in rows]),
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


def lineage(engine: Engine, run_id: int) -> Lineage:
    """Document flows between the previous rebuild's stories and this one's, and the changes recorded by this run."""
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
        flows = [(int(a), int(b), int(n)) for a, b, n in c.execute(text(
            """
            SELECT p.cluster_id, n.cluster_id, COUNT(*) FROM run_assignments p
            JOIN run_assignments n ON n.document_id = p.document_id AND n.run_id = :r AND n.assigned_by = 'rebuild'
            WHERE p.run_id = :p AND p.assigned_by = 'rebuild' AND NOT (p.cluster_id = -1 AND n.cluster_id = -1)
            GROUP BY p.cluster_id, n.cluster_id
            """), {"r": run_id, "p": prev})]
        names, topics = {}, {}
        for cid, name, tid in c.execute(text("SELECT cluster_id, name, topic_id FROM cluster_snapshots WHERE run_id = :p"), {"p": prev}):
            names[int(cid)] = name or ""
            topics[int(cid)] = -1 if tid is None else int(tid)
        topic_names = {int(t): n or "" for t, n in c.execute(text("SELECT topic_id, name FROM topic_snapshots WHERE run_id = :p"), {"p": prev})}
    flows.sort(key=lambda f: -f[2])
    return Lineage(prev, flows, events, names, topics, topic_names)


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
