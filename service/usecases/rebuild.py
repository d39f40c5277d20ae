"""A full rebuild: one chain of named steps over the window's kNN graph, committed in one transaction."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..clustering.alerts import placed_homes, story_profiles
from ..clustering.assign import PredictionState
from ..clustering.graph import complete_lists, knn, subgraph
from ..clustering.hdbscan_fit import Anchor
from ..clustering.identity import DRIFT_MIN_COSINE, match_clusters
from ..clustering.levels import persistent, settle, story_moves
from ..clustering.naming import central_members, name_stories_and_topics
from ..clustering.two_level import TwoLevelParams, fit_two_levels
from ..domain import NOISE, Headline, unix_seconds
from ..sorted_keys import find_rows
from .alerts import raise_alerts_safely
from .common import Progress, best_effort, no_progress
from .report import MapJob, publish_quick_map

if TYPE_CHECKING:
    from ..ports import App, NeighbourIndex, SavedName

log = logging.getLogger("newsclust")

# A story is one event: its most central 30 headlines name it as well as its first 100 (the topics' reading), and at
# 1M documents, where nearly every clustered headline sits in a story under 100, naming read 850k texts: 15 -> 9 s.
STORY_NAME_DOCS = 30


@dataclass
class RebuildResult:
    run_id: int
    documents: int
    stories: int
    noise: int  # documents in no story
    min_cluster_size: int  # the story level's
    events: dict[str, int]
    seconds: dict[str, float]
    topics: int = 0
    topic_noise: int = 0
    report: str | None = None
    report_error: str | None = None
    alerts: list[dict] = field(default_factory=list)


class _Stages:
    """Seconds per named stage of a rebuild: `with stages("graph"): ...`."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t0, 3)


def rebuild_due(app: App) -> bool:
    """The schedule's rule: there is something to cluster, and enough has arrived since the last rebuild."""
    documents, arrived = app.runs.arrival_counts()
    return documents > 0 and arrived >= app.settings.rebuild_min_pending


def rebuild(app: App, write_report_after: bool = True, progress: Progress = no_progress,
            on_map_job: Callable[[MapJob], None] | None = None) -> RebuildResult:
    """Full rebuild, one chain: kNN graph (kept by the store) -> stories and topics from one HDBSCAN tree ->
    settled against the last run -> persistent ids at both levels -> names -> one SQLite commit -> quick map and page.
    The refined map is handed to on_map_job to run after (None: refined here before returning)."""
    s = app.settings
    if not s.shared:  # one writer, one rebuild at a time: a run still 'running' is one whose failure could not be recorded
        app.runs.abandon_running_runs("a previous rebuild failed before its failure could be recorded")
    prev = app.runs.latest_run()
    params = TwoLevelParams(story_min_cluster_size=s.story_min_size, topic_min_cluster_size=s.topic_min_size, min_samples=s.min_samples)
    run_id = app.runs.start_run({**asdict(params), "knn_k": s.knn_k})
    stages = _Stages()
    try:
        with stages("graph"):
            index = app.open_neighbours()  # held here: the store is set aside once the graph is read
            # a file stores its vectors before its rows: rows read before the graph all have their vector in it
            # unless the store lost it (restored below); rows read after it also count the documents stored meanwhile
            # (other workers ingest during the read), which would otherwise be left out as vectors without a row
            known_before = app.ledger.all_document_ids()
            doc_ids, vectors, neigh = read_graph(app, index)
        progress("vectors", len(doc_ids))
        with stages("cluster"):
            fit = fit_two_levels(neigh, params, vectors)
        with stages("settle"):
            none = np.zeros(0, np.int64)
            prev_levels = app.runs.run_levels(prev.id) if prev else None
            prev_docs, prev_stories, prev_topic_docs, prev_topics = prev_levels[:4] if prev_levels else (none, none, none, none)
            anchor = None
            if s.stabilize and len(prev_docs):
                # hold what users have seen: the last run's members and the arrivals placed since
                anchor = Anchor(prev_docs, prev_stories, doc_ids, s.hold_margin, app.runs.placed_labels(prev.id))
            levels = settle(fit, neigh, vectors, anchor, _aligned(prev_topic_docs, prev_topics, doc_ids), params.topics)
        with stages("match"):
            drifted_from = {ch.split_label: ch.old_id for ch in levels.drift_checks if ch.split_label != NOISE}
            story_match = match_clusters(prev_docs, prev_stories, doc_ids, levels.story_labels, app.runs.next_story_id(), s.match_min_jaccard,
                                         drifted_from)
            drift_rows = [{"story_id": int(story_match.ids[ch.label]), "old_members": ch.old_members, "new_members": ch.new_members,
                           "cosine": ch.cosine, "min_cosine": DRIFT_MIN_COSINE,
                           "split_story_id": int(story_match.ids[ch.split_label]) if ch.split_label != NOISE else None}
                          for ch in levels.drift_checks]
            drift_rows = list({r["story_id"]: r for r in reversed(drift_rows)}.values())[::-1]  # one row per story kept (the table's key)
            topic_match = match_clusters(prev_topic_docs, prev_topics, doc_ids, levels.topic_labels, app.runs.next_topic_id(),
                                         s.match_min_jaccard)
            stories = persistent(levels.story_labels, story_match.ids)
            topics = persistent(levels.topic_labels, topic_match.ids)
            story_topic_ids = persistent(levels.story_topic, topic_match.ids)
            moves = story_moves(app.runs.story_topics(prev.id) if prev else {}, story_match.ids, story_topic_ids)
            events = story_match.events + moves + [replace(e, level="topic") for e in topic_match.events]
        with stages("name"):
            story_names, topic_names = name_levels(app, doc_ids, vectors, levels.story_labels, levels.story_topic, story_match.ids,
                                                   topic_match.ids)
        with stages("save_state"):
            app.run_files.save_prediction_state(run_id, PredictionState(
                doc_ids=doc_ids, labels=stories, probabilities=levels.story_probabilities, outlier_scores=levels.story_outlier_scores,
                core_distances=fit.core_distances, cluster_ids=story_match.ids, cluster_max_edge=levels.story_max_edge,
                cluster_min_core=levels.story_min_core, min_samples=s.min_samples, topics=topics, cluster_topics=story_topic_ids,
            ))
        with stages("commit"):
            app.failpoints.reach("rebuild")
            app.runs.commit_run(run_id, doc_ids=doc_ids, labels=stories, probabilities=levels.story_probabilities,
                                outlier_scores=levels.story_outlier_scores, names=story_names, events=events, timings=stages.seconds,
                                params={**asdict(params), "knn_k": s.knn_k, "min_cluster_size_used": fit.story_min_cluster_size,
                                        "topic_min_cluster_size_used": fit.topic_min_cluster_size,
                                        # how the vector copy met the store: current, caught up (rows read) or refilled
                                        "vector_sync": getattr(index, "last_sync", None)},
                                topics=topics, story_topics=dict(zip(story_match.ids.tolist(), story_topic_ids.tolist())),
                                topic_names=topic_names, drift_checks=drift_rows, previous=prev_levels)
    except Exception as exc:
        # best effort: the database may be what failed; a run left 'running' is closed before the next rebuild starts
        best_effort(app.runs.fail_run, run_id, f"{type(exc).__name__}: {exc}")
        raise
    app.forget_prediction_state()
    with stages("restore"):  # after the graph read, so the read only reads (and a store set aside opens once, here)
        best_effort(_restore_lost, app, known_before, doc_ids)
    counts: dict[str, int] = {}
    for e in events:
        key = e.kind if e.level == "story" else f"topic {e.kind}"
        counts[key] = counts.get(key, 0) + 1
    result = RebuildResult(run_id=run_id, documents=len(doc_ids), stories=levels.n_stories, noise=int((stories == NOISE).sum()),
                           min_cluster_size=fit.story_min_cluster_size, events=counts, seconds=stages.seconds,
                           topics=levels.n_topics, topic_noise=int((topics == NOISE).sum()))
    with stages("alerts"):
        profiles = story_profiles(vectors, stories, neigh)
        best_effort(app.run_files.save_story_cohesion, run_id, profiles.story_ids, profiles.cohesion)
        placed = placed_homes(doc_ids, stories, *anchor.placed) if anchor is not None and anchor.placed is not None else None
        result.alerts = raise_alerts_safely(app, run_id, profiles, placed, labels=(doc_ids, stories))
    if write_report_after:
        # the run is committed: a failing map or page (a report folder not writable, a full disk) is reported, not a failed rebuild
        try:
            jobs: list[MapJob] = []
            with stages("report"):  # the quick map and the page; the refined map is on_map_job's (report.py)
                held = {run_id: (doc_ids, stories), **({prev.id: (prev_docs, prev_stories)} if prev else {})}
                result.report = publish_quick_map(app, prev, run_id, doc_ids, vectors, neigh, on_map_job or jobs.append, held)
            for job in jobs:  # no one to hand it to: refined here
                with stages("layout"):
                    result.report = str(job.run(app))
        except Exception as exc:  # noqa: BLE001
            result.report_error = f"{type(exc).__name__}: {exc}"
            log.warning("run %d is committed but its report was not written: %s", run_id, result.report_error)
    return result


def name_levels(app: App, doc_ids: np.ndarray, vectors, story_labels: np.ndarray, story_topic: np.ndarray, story_ids: np.ndarray,
                topic_ids: np.ndarray) -> tuple[dict[int, SavedName], dict[int, SavedName]]:
    """The rebuild's name stage: (names by persistent story id, names by persistent topic id). story_labels: each
    document's story label (NOISE: none); story_topic: each story label's topic label; story_ids / topic_ids: the
    persistent id of each label."""
    with _gc_paused():
        return _name_levels(app, doc_ids, vectors, story_labels, story_topic, story_ids, topic_ids)


@contextmanager
def _gc_paused():
    """Python's cycle collector paused: naming builds millions of small lists and strings (texts, tokens), none in a
    cycle, and the collector's passes over them cost about a fifth of the stage's CPU at 1M synthetic headlines (measured
    before the stage's other changes)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _name_levels(app: App, doc_ids: np.ndarray, vectors, story_labels: np.ndarray, story_topic: np.ndarray, story_ids: np.ndarray,
                 topic_ids: np.ndarray) -> tuple[dict[int, SavedName], dict[int, SavedName]]:
    # the texts are read (SQLite, then Python lists) while the stories' central rows are found (numpy, which lets go of
    # the GIL): at 1M synthetic headlines, a machine at load ~1, 0.9 + 1.0 CPU s in 1.2 s of wall instead of 1.8
    with ThreadPoolExecutor(max_workers=1) as pool:
        reading = pool.submit(app.ledger.document_text_columns, doc_ids)
        members = central_members(story_labels, vectors, STORY_NAME_DOCS)
        titles, descriptions = reading.result()
    by_story, by_topic = name_stories_and_topics(_Texts(titles, descriptions), story_labels, vectors, story_topic, titles=titles,
                                                 descriptions=descriptions, max_keyword_docs=STORY_NAME_DOCS, members=members)
    ids, story_ids, topic_ids = doc_ids.tolist(), story_ids.tolist(), topic_ids.tolist()  # plain ints, looked up one by one
    story_names = {story_ids[label]: _story_name(name, titles, ids) for label, name in by_story.items()}
    topic_names = {topic_ids[label]: _topic_name(name, ids, topic_ids[label]) for label, name in by_topic.items()}
    return story_names, topic_names


class _Texts(Sequence[str]):
    """Each document's "title description" (what naming reads), made when naming asks for it: it reads only the most
    central rows of each story (60% of the documents at 1M synthetic headlines)."""

    def __init__(self, titles: list[str], descriptions: list[str]):
        self.titles, self.descriptions = titles, descriptions

    def __len__(self) -> int:
        return len(self.titles)

    def __getitem__(self, row):
        return f"{self.titles[row]} {self.descriptions[row]}"


def _aligned(ids: np.ndarray, labels: np.ndarray, doc_ids: np.ndarray) -> np.ndarray:
    """labels (of documents ids) for each of doc_ids, NOISE where a document had none."""
    out = np.full(len(doc_ids), NOISE, np.int64)
    rows, hit = find_rows(ids, doc_ids)
    out[hit] = labels[rows[hit]]
    return out


def read_graph(app: App, index: NeighbourIndex | None):
    """(document ids sorted, vectors, kNN lists) of the documents this rebuild clusters: the window's, and only
    those with a document row (read after the graph: rows stored meanwhile count). index: the kept graph,
    else None (the store's vectors, searched here). Reads only: lost vectors are restored after (_restore_lost)."""
    s = app.settings
    if index is not None:  # the graph was kept up to date as documents arrived
        # once the copy is checked against the store, an in-process store's copy of every vector is let go for the
        # rest of the rebuild (App.set_store_aside, VectorStore.release): the next write opens it again
        doc_ids, vectors, neigh = index.neighbour_graph(since_ts=_window_start(app), by=s.window_by,
                                                     checked=app.set_store_aside)
    else:
        doc_ids, vectors = app.open_store().all_vectors(since_ts=_window_start(app), by=s.window_by)
        neigh = knn(vectors, s.knn_k)
    return _documented_only(app.ledger.all_document_ids(), doc_ids, vectors, neigh)


def _documented_only(known: np.ndarray, doc_ids: np.ndarray, vectors, neigh):
    """The vector store and the history agree on what a rebuild sees: a vector whose document row was never written
    (a file interrupted between the two writes, retried later) is left out, never clustered as a phantom headline."""
    keep = np.isin(doc_ids, known, assume_unique=True)
    if keep.all():
        return doc_ids, vectors, neigh
    rows = np.flatnonzero(keep)
    log.warning("%d vector(s) in the store have no document row yet (their file is being retried): left out of this rebuild",
                len(doc_ids) - len(rows))
    window = np.asarray(vectors[rows], dtype=np.float32)
    return doc_ids[rows], window, complete_lists(subgraph(neigh, rows, len(doc_ids)), window)


RESTORE_LIMIT = 20_000  # lost vectors embedded again per rebuild, so a rebuild stays bounded


def _restore_lost(app: App, known: np.ndarray, read: np.ndarray) -> int:
    """The reverse of _documented_only: rows whose vector the store lost (known, not read) are embedded again and join
    the next rebuild. Only where the rebuild read the whole history (no window). On a shared home, ingest workers keep
    writing after the vectors were read: a document whose vector the store holds by now is not lost (a rebuild leader
    re-embedded hundreds of them per rebuild before this check)."""
    if _window_start(app) is not None or len(known) <= len(read):
        return 0
    missing = np.setdiff1d(known, read, assume_unique=True)[:RESTORE_LIMIT]
    if len(missing) and app.settings.shared:  # only a shared home has other writers
        missing = missing[~np.any(app.open_store().vectors_of(missing) != 0, axis=1)]
    return restore_missing_vectors(app, missing)


def restore_missing_vectors(app: App, missing: np.ndarray | None = None, limit: int = RESTORE_LIMIT) -> int:
    """Documents whose vector the store lost (a vector store reset, a restored backup) are embedded again, up to
    `limit` per call so a rebuild stays bounded; the rest follow at the next. The rebuild passes the ids its graph
    read found missing (_restore_lost, after the commit); called alone, it compares the history with the store's ids."""
    if missing is None:
        known = app.ledger.all_document_ids()
        if len(known) == 0:
            return 0
        missing = np.setdiff1d(known, app.open_store().all_vectors()[0], assume_unique=True)
    missing = missing[:limit]
    if len(missing) == 0:
        return 0
    log.warning("%d document(s) have no vector in the store: embedding them again", len(missing))
    texts = app.ledger.document_texts(missing)
    times = app.ledger.document_times(missing)
    for start in range(0, len(missing), 256):
        ids = missing[start : start + 256]
        vectors = app.embedder.embed([_text(*texts[int(i)]) for i in ids])
        published = np.array([int(unix_seconds(times[int(i)][0])) for i in ids], np.int64)
        ingested = np.array([int(unix_seconds(times[int(i)][1])) for i in ids], np.int64)
        app.open_store().upsert(ids, vectors, published, ingested)
    return len(missing)


def _text(title: str, description: str) -> str:
    return Headline(key="", title=title, description=description, url=None, published_at=None).text


def _story_name(name, titles: list[str], doc_ids: Sequence[int]) -> SavedName:
    """A story is called by its most central headline (people recognise a headline, not a keyword list)."""
    title = titles[name.title_row] if name.title_row >= 0 else ", ".join(name.keywords[:3])
    return (_clip(title) or ", ".join(name.keywords[:3]) or "untitled story", list(name.keywords), [int(doc_ids[r]) for r in name.representatives])


def _topic_name(name, doc_ids: Sequence[int], topic_id: int) -> SavedName:
    """A topic is broad: its top keywords say more than any one headline."""
    return (", ".join(name.keywords[:3]) or f"topic {topic_id}", list(name.keywords), [int(doc_ids[r]) for r in name.representatives])


def _clip(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _window_start(app: App) -> int | None:
    """The window ends at the newest document's time, not the wall clock, so a replayed stream behaves like a live one."""
    s = app.settings
    if s.window_days <= 0:
        return None
    newest = app.ledger.newest_time(s.window_by)
    if newest is None:
        return None
    return int(unix_seconds(newest - timedelta(days=s.window_days)))
