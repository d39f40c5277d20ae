"""The things the service does: ingest a file, place arrivals, rebuild, write the report, export.

Each takes the wired App (bootstrap.py) and holds the order of steps; the algorithms live in
clustering/, the I/O in adapters/.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from datetime import datetime, timedelta, timezone
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import state as run_state
from .clustering.alerts import SurgeRule, story_paces
from .clustering.assign import PredictionState, dense_groups, place, place_topics
from .clustering.graph import complete_lists, knn, subgraph
from .clustering.hdbscan_fit import Anchor
from .clustering.levels import persistent, settle, story_moves
from .clustering.two_level import TwoLevelParams, fit_two_levels
from .clustering.identity import match_clusters
from .clustering.layout import initial_positions, layout_2d
from .clustering.naming import name_clusters
from .domain import NOISE, Headline, Rejected, unix_seconds, utcnow
from .faults import transient_cause
from .files import SafeCsvWriter, atomic_write
from .ingest import BadFile, read_headlines

if TYPE_CHECKING:
    from .bootstrap import App

log = logging.getLogger("newsclust")

Progress = Callable[[str, int], None]  # (stage, items done) — the CLI shows it, tests ignore it


def _no_progress(stage: str, n: int) -> None:
    pass


@dataclass
class IngestResult:
    file: str
    state: str  # processed, failed, duplicate, interrupted, retrying, gone
    rows_seen: int = 0
    stored: int = 0
    updated: int = 0
    duplicates: int = 0
    rejected: int = 0
    predicted: int = 0
    attempt: int = 1
    encoding: str | None = None
    reason: str | None = None
    moved_to: str | None = None
    transient: bool = False  # retrying because our environment failed, not the file
    ledger_id: int | None = None  # its row in ingested_files
    seconds: dict[str, float] = field(default_factory=dict)


# an internal error (a bug, not the file, not the environment) is retried this often before the file goes to failed/
MAX_INTERNAL_ATTEMPTS = 3
# longest file name we write: most file systems stop at 255 bytes, and ".reason.txt" and a time suffix go on top
MAX_NAME_BYTES = 180


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def short_name(name: str, limit: int = MAX_NAME_BYTES) -> str:
    """A name that fits the file system: a long stem is cut and a digest of the whole name keeps it unique."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not dot or len(suffix) > 16:
        stem, suffix = name, ""
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]
    tail = f"~{digest}" + (f".{suffix}" if suffix else "")
    cut = stem.encode("utf-8")[: limit - len(tail.encode("utf-8"))].decode("utf-8", "ignore")
    return cut + tail


def _move(path: Path, folder: Path) -> Path:
    """Into folder under the same name (shortened if too long); a name already there gets a time suffix instead of being overwritten."""
    folder.mkdir(parents=True, exist_ok=True)
    name = short_name(path.name)
    target = folder / name
    if target.exists() or target.is_symlink():
        p = Path(name)
        target = folder / f"{p.stem}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}.{time.monotonic_ns() % 10**6}{p.suffix}"
    shutil.move(str(path), str(target))
    return target


def _fail(app: App, path: Path, reason: str, rejects: list[Rejected] | None = None) -> Path:
    failed_dir = app.settings.failed_dir
    moved = _move(path, failed_dir) if (path.exists() or path.is_symlink()) else failed_dir / short_name(path.name)
    atomic_write(moved.with_name(moved.name + ".reason.txt"), reason + "\n")
    if rejects:
        _write_rejects(moved.with_name(moved.name + ".rejects.csv"), rejects)
    return moved


def _write_rejects(target: Path, rejects: list[Rejected]) -> None:
    columns = sorted({k for r in rejects for k in r.row})
    tmp = target.with_name(target.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        w = SafeCsvWriter(fh)
        w.writerow(["line", "reason", *columns])
        for r in rejects:
            w.writerow([r.line, r.reason, *(r.row.get(c, "") for c in columns)])
    os.replace(tmp, target)


class Interrupted(Exception):
    """Shutdown asked mid-file: what is written stays (idempotent), the file stays in the inbox for the restart."""


def recover(app: App) -> dict[str, int]:
    """At a writer's start: runs and files a killed process left half-done are marked so; their files are still in the inbox."""
    return app.repo.mark_interrupted()


def ingest_file(app: App, path: Path, progress: Progress = _no_progress, should_stop: Callable[[], bool] = lambda: False) -> IngestResult:
    """One file through parse -> dedup -> embed -> Milvus -> SQLite -> placement -> processed/ or failed/.

    Milvus is written before SQLite and both writes are idempotent (primary keys come from
    document identity), so a crash anywhere leaves the file in the inbox to be redone safely.
    Whose fault a failure is decides where the file goes (service/faults.py): the file's own
    content sends it to failed/ with its reason; our environment failing (SQLite locked, the
    vector store unreachable, a full disk) leaves it in the inbox, state 'retrying', to be taken again.
    """
    result = IngestResult(file=path.name, state="failed")
    try:
        _ingest(app, path, result, progress, should_stop)
    except Exception as exc:  # noqa: BLE001 — one file's failure must not stop the stream
        cause = transient_cause(exc)
        if cause is None and result.attempt >= MAX_INTERNAL_ATTEMPTS:
            log.exception("ingest of %s failed (attempt %d)", path.name, result.attempt)
            result.reason = f"{path.name}: internal error while ingesting (attempt {result.attempt}): {type(exc).__name__}: {exc}"
            try:
                _finish_failed(app, path, result, result.ledger_id, [])
                return result
            except Exception as move_exc:  # noqa: BLE001 — failed/ itself is the problem: the service parks the file
                exc = move_exc
                cause = transient_cause(move_exc)
        result.state, result.transient = "retrying", cause is not None
        result.reason = f"{path.name}: {cause or f'internal error ({type(exc).__name__}: {exc})'}; the file stays in the inbox and is taken again"
        if cause is None:
            log.exception("ingest of %s failed (attempt %d), will retry", path.name, result.attempt)
        if result.ledger_id is not None:
            _best_effort(app.repo.note_file, result.ledger_id, "retrying", result.reason)
    return result


def _best_effort(fn, *args) -> None:
    """A ledger note while the database may be the thing failing: worth a try, not worth failing for."""
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not record it in the ledger (%s): %s", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")


def _ingest(app: App, path: Path, result: IngestResult, progress: Progress, should_stop: Callable[[], bool]) -> None:
    s = app.settings
    if not (path.exists() or path.is_symlink()):
        result.state, result.reason = "gone", f"{path.name}: removed from the inbox before it was taken"
        return
    if path.is_symlink() or not path.is_file():
        what = "a symlink" if path.is_symlink() else "a directory" if path.is_dir() else "not a regular file"
        result.reason = f"{path.name}: {what}; drop regular CSV files into the inbox"
        result.moved_to = str(_fail(app, path, result.reason))
        return

    digest = sha256_of(path)
    if app.repo.processed_file(digest) is not None:
        result.state, result.reason = "duplicate", f"{path.name}: same bytes as a file already ingested; nothing to do"
        result.moved_to = str(_move(path, s.processed_dir))
        return

    file_id, result.attempt = app.repo.start_file(path.name, digest, path.stat().st_size)
    result.ledger_id = file_id
    rejects: list[Rejected] = []
    t = {"parse": 0.0, "embed": 0.0, "milvus": 0.0, "sqlite": 0.0, "predict": 0.0}
    try:
        t0 = time.perf_counter()
        info, chunks = read_headlines(path)
        result.encoding = info.encoding
        t["parse"] += time.perf_counter() - t0
        seen_keys: set[str] = set()
        while True:
            t0 = time.perf_counter()
            chunk = next(chunks, None)
            app.failpoints.reach("parse")
            t["parse"] += time.perf_counter() - t0
            if chunk is None:
                break
            if should_stop():
                raise Interrupted
            rejects.extend(chunk.rejects)
            result.rows_seen += len(chunk.headlines) + len(chunk.rejects)
            fresh = [h for h in chunk.headlines if not (h.key in seen_keys or seen_keys.add(h.key))]
            result.duplicates += len(chunk.headlines) - len(fresh)
            stored = _store_headlines(app, fresh, file_id, t, should_stop, retry=result.attempt > 1)
            result.stored += stored.stored
            result.updated += stored.updated
            result.duplicates += stored.duplicates
            result.predicted += stored.predicted
            progress("rows", result.rows_seen)
    except Interrupted:
        app.repo.finish_file(file_id, "interrupted", seen=result.rows_seen, stored=result.stored, duplicate=result.duplicates,
                             rejected=len(rejects), updated=result.updated, encoding=result.encoding,
                             reason="shutdown before the end of the file; it stays in the inbox")
        result.state, result.reason = "interrupted", "shutdown before the end of the file; it stays in the inbox and is taken again at restart"
        return
    except BadFile as exc:
        result.reason = str(exc)
        result.rejected = len(rejects)
        result.seconds = {k: round(v, 3) for k, v in t.items()}
        _finish_failed(app, path, result, file_id, rejects)
        return
    result.rejected = len(rejects)
    result.seconds = {k: round(v, 3) for k, v in t.items()}
    if rejects:
        rejects_name = short_name(path.name)
        if (s.failed_dir / f"{rejects_name}.rejects.csv").exists():  # an earlier file of that name keeps its report
            rejects_name = short_name(f"{Path(rejects_name).stem}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}{Path(rejects_name).suffix}")
        reason = f"{path.name}: {len(rejects)} of {result.rows_seen} rows rejected (see the rejects CSV for line numbers and reasons); the other rows were ingested"
        s.failed_dir.mkdir(parents=True, exist_ok=True)
        _write_rejects(s.failed_dir / f"{rejects_name}.rejects.csv", rejects)
        atomic_write(s.failed_dir / f"{rejects_name}.reason.txt", reason + "\n")
        result.reason = reason
    app.repo.finish_file(file_id, "processed", seen=result.rows_seen, stored=result.stored, duplicate=result.duplicates,
                         rejected=result.rejected, updated=result.updated, encoding=result.encoding, reason=result.reason)
    result.state = "processed"
    app.failpoints.reach("move")
    result.moved_to = str(_move(path, s.processed_dir))


def _finish_failed(app: App, path: Path, result: IngestResult, file_id: int | None, rejects: list[Rejected]) -> None:
    """Moved first, recorded second: if the move fails, the ledger row is still open and the retry continues it."""
    result.moved_to = str(_fail(app, path, result.reason or "failed", rejects))
    result.state = "failed"
    if file_id is not None:
        app.repo.finish_file(file_id, "failed", seen=result.rows_seen, stored=result.stored, duplicate=result.duplicates,
                             rejected=result.rejected, updated=result.updated, encoding=result.encoding, reason=result.reason)


@dataclass
class Stored:
    stored: int = 0
    updated: int = 0
    duplicates: int = 0
    predicted: int = 0


def _store_headlines(app: App, headlines: list[Headline], file_id: int, t: dict[str, float], should_stop=lambda: False,
                     retry: bool = False) -> Stored:
    """New headlines are stored; a known guid or url with other text is a correction (newest text wins, the old
    one goes to document_revisions, the vector is re-embedded and the document placed again); identical text is a no-op."""
    out = Stored()
    if not headlines:
        return out
    t0 = time.perf_counter()
    known = app.repo.stored_texts([h.id for h in headlines])
    t["sqlite"] += time.perf_counter() - t0
    new = [h for h in headlines if h.id not in known]
    corrected = [h for h in headlines if h.id in known and known[h.id] != (h.title, h.description)]
    out.duplicates = len(headlines) - len(new) - len(corrected)
    if retry and out.duplicates:
        # an earlier attempt of this file stored these rows, then failed before placing them: place them now
        unplaced = app.repo.unplaced_ids([h.id for h in headlines if h.id in known and known[h.id] == (h.title, h.description)])
        if len(unplaced):
            t0 = time.perf_counter()
            out.predicted += assign_arrivals(app, unplaced, app.store.vectors_of(unplaced))
            t["predict"] += time.perf_counter() - t0
    bs = 256  # small enough that a shutdown between batches comes within seconds
    for kind, todo in (("new", new), ("corrected", corrected)):
        for start in range(0, len(todo), bs):
            if should_stop():
                raise Interrupted
            batch = todo[start : start + bs]
            t0 = time.perf_counter()
            vectors = app.embedder.embed([h.text for h in batch])
            app.failpoints.reach("embed")
            t["embed"] += time.perf_counter() - t0
            now = utcnow()
            ids = np.array([h.id for h in batch], np.int64)
            t0 = time.perf_counter()
            published = np.array([_ts(h.published_at) for h in batch], np.int64)
            app.store.upsert(ids, vectors, published, np.full(len(batch), _ts(now), np.int64))
            app.failpoints.reach("milvus")
            t["milvus"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            if kind == "new":
                app.repo.add_documents(batch, file_id, now)
                out.stored += len(batch)
            else:
                app.repo.revise_documents(batch, file_id, now)
                out.updated += len(batch)
            app.failpoints.reach("sqlite")
            t["sqlite"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            out.predicted += assign_arrivals(app, ids, vectors)
            t["predict"] += time.perf_counter() - t0
    return out


def _ts(dt) -> int:
    """Whole unix seconds, as the vector store keeps times."""
    return int(unix_seconds(dt))


def assign_arrivals(app: App, ids: np.ndarray, vectors: np.ndarray) -> int:
    """Place arrivals in the last rebuild's clusters from their Milvus neighbours; nothing to do before a first rebuild."""
    run = app.repo.latest_run()
    if run is None or len(ids) == 0:
        return 0
    pstate = app.prediction_state(run.id)
    if pstate is None or len(pstate.doc_ids) == 0:
        return 0
    k = app.settings.assign_neighbours
    # over-fetch: the arrivals themselves and other unfitted documents come back too and are dropped.
    # The writer's store answers from its live index (adapters/vector_cache.py), else Milvus searches.
    nb_ids, nb_dist = app.store.search(vectors, k + min(len(ids), 32))
    pos = pstate.positions(nb_ids.ravel()).reshape(nb_ids.shape)
    pos[nb_ids < 0] = -1
    placed = place(pstate, pos, nb_dist, app.settings.assign_min_vote)
    topics = place_topics(pstate, pos, placed.labels)
    app.repo.record_predictions(run.id, ids, placed.labels, placed.probabilities, placed.outlier_scores, topics)
    return len(ids)


def new_story_in_noise_pool(app: App) -> bool:
    """Arrivals prediction left as noise, grouped among themselves: a group as big as the last run's
    smallest allowed cluster and as tight as the stories it found is a new story, worth a rebuild now."""
    run = app.repo.latest_run()
    if run is None:
        return False
    s = app.settings
    size = run.min_cluster_size_used or s.story_min_size
    pool = app.repo.noise_pool_ids(run.id)
    pstate = app.prediction_state(run.id)
    if len(pool) < size or pstate is None or len(pstate.cluster_max_edge) == 0:
        return False
    vectors = app.store.vectors_of(pool)
    groups = dense_groups(knn(vectors, s.knn_k), s.min_samples, float(np.median(pstate.cluster_max_edge)), int(size))
    return bool((groups >= 0).any())


@dataclass
class RebuildResult:
    run_id: int
    documents: int
    clusters: int  # stories
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


def rebuild(app: App, write_report_after: bool = True, progress: Progress = _no_progress) -> RebuildResult:
    """Full rebuild, one chain: kNN graph (kept by the store) -> stories and topics from one HDBSCAN tree ->
    settled against the last run -> persistent ids at both levels -> names -> one SQLite commit -> map and page."""
    s = app.settings
    if not s.shared:  # one writer, one rebuild at a time: a run still 'running' is one whose failure could not be recorded
        app.repo.abandon_running_runs("a previous rebuild failed before its failure could be recorded")
    prev = app.repo.latest_run()
    params = TwoLevelParams(story_min_cluster_size=s.story_min_size, topic_min_cluster_size=s.topic_min_size, min_samples=s.min_samples)
    run_id = app.repo.start_run({**asdict(params), "knn_k": s.knn_k})
    stages = _Stages()
    try:
        with stages("graph"):
            doc_ids, vectors, neigh = _read_graph(app)
        progress("vectors", len(doc_ids))
        with stages("cluster"):
            fit = fit_two_levels(neigh, params)
        with stages("settle"):
            prev_docs, prev_stories = app.repo.run_labels(prev.id) if prev else (np.zeros(0, np.int64), np.zeros(0, np.int64))
            anchor = None
            if s.stabilize and len(prev_docs):
                # hold what users have seen: the last run's members and the arrivals placed since
                anchor = Anchor(prev_docs, prev_stories, doc_ids, s.hold_margin, app.repo.placed_labels(prev.id))
            levels = settle(fit, neigh, vectors, anchor)
        with stages("match"):
            story_match = match_clusters(prev_docs, prev_stories, doc_ids, levels.story_labels, app.repo.next_cluster_id(), s.match_min_jaccard)
            prev_topic_docs, prev_topics = app.repo.run_topic_labels(prev.id) if prev else (np.zeros(0, np.int64), np.zeros(0, np.int64))
            topic_match = match_clusters(prev_topic_docs, prev_topics, doc_ids, levels.topic_labels, app.repo.next_topic_id(),
                                         s.match_min_jaccard)
            stories = persistent(levels.story_labels, story_match.ids)
            topics = persistent(levels.topic_labels, topic_match.ids)
            story_topic_ids = persistent(levels.story_topic, topic_match.ids)
            moves = story_moves(app.repo.story_topics(prev.id) if prev else {}, story_match.ids, story_topic_ids)
            events = story_match.events + moves + [replace(e, level="topic") for e in topic_match.events]
        with stages("name"):
            texts_by_id = app.repo.document_texts(doc_ids)
            titles = [texts_by_id.get(int(i), ("", ""))[0] for i in doc_ids]
            texts = [" ".join(texts_by_id.get(int(i), ("", ""))) for i in doc_ids]
            story_names = {int(story_match.ids[label]): _story_name(name, titles, doc_ids)
                           for label, name in name_clusters(texts, levels.story_labels, vectors, titles=titles).items()}
            topic_names = {int(topic_match.ids[label]): _topic_name(name, doc_ids, int(topic_match.ids[label]))
                           for label, name in name_clusters(texts, levels.topic_labels, vectors, titles=titles).items()}
        with stages("save_state"):
            run_state.save_prediction_state(s.state_dir, run_id, PredictionState(
                doc_ids=doc_ids, labels=stories, probabilities=levels.story_probabilities, outlier_scores=levels.story_outlier_scores,
                core_distances=fit.core_distances, cluster_ids=story_match.ids, cluster_max_edge=levels.story_max_edge,
                cluster_min_core=levels.story_min_core, min_samples=s.min_samples, topics=topics, cluster_topics=story_topic_ids,
            ))
        with stages("commit"):
            app.failpoints.reach("rebuild")
            app.repo.commit_run(run_id, doc_ids=doc_ids, labels=stories, probabilities=levels.story_probabilities,
                                outlier_scores=levels.story_outlier_scores, names=story_names, events=events, timings=stages.seconds,
                                params={**asdict(params), "knn_k": s.knn_k, "min_cluster_size_used": fit.story_min_cluster_size,
                                        "topic_min_cluster_size_used": fit.topic_min_cluster_size},
                                topics=topics, story_topics=dict(zip(story_match.ids.tolist(), story_topic_ids.tolist())),
                                topic_names=topic_names)
    except Exception as exc:
        # best effort: the database may be what failed; a run left 'running' is closed before the next rebuild starts
        _best_effort(app.repo.fail_run, run_id, f"{type(exc).__name__}: {exc}")
        raise
    app.forget_prediction_state()
    counts: dict[str, int] = {}
    for e in events:
        key = e.kind if e.level == "story" else f"topic {e.kind}"
        counts[key] = counts.get(key, 0) + 1
    result = RebuildResult(run_id=run_id, documents=len(doc_ids), clusters=levels.n_stories, noise=int((stories == NOISE).sum()),
                           min_cluster_size=fit.story_min_cluster_size, events=counts, seconds=stages.seconds,
                           topics=levels.n_topics, topic_noise=int((topics == NOISE).sum()))
    with stages("alerts"):
        result.alerts = raise_alerts_safely(app, run_id)
    if write_report_after:
        # the run is committed: a failing map or page (a report folder not writable, a full disk) is reported, not a failed rebuild
        try:
            with stages("layout"):
                xy = layout_2d(vectors, seed=s.seed, init=_previous_layout(app, prev, doc_ids, neigh), neigh=neigh)
                run_state.save_layout(s.state_dir, run_id, doc_ids, xy)
            with stages("report"):
                result.report = str(write_report(app, run_id))
        except Exception as exc:  # noqa: BLE001
            result.report_error = f"{type(exc).__name__}: {exc}"
            log.warning("run %d is committed but its report was not written: %s", run_id, result.report_error)
    return result


def raise_alerts(app: App, run_id: int | None = None) -> list[dict]:
    """After a rebuild (run_id: new stories and surges) or after arrivals (surges only): decide, record once per
    story and state change, then tell: the Atom feed, one log line each, the webhook."""
    s = app.settings
    run = app.repo.latest_run()
    if run is None:
        return []
    rule = SurgeRule(window_s=s.surge_window_h * 3600.0, factor=s.surge_factor, min_recent=s.surge_min_headlines)
    newest = app.repo.newest_time("published")
    since = newest - timedelta(seconds=rule.window_s * 30) if newest is not None else None  # a month of 6-h windows is plenty of past
    story_ids, times = app.alerts.story_times(run.id, since)
    paces = {p.story_id: p for p in story_paces(story_ids, times, rule)}
    cards = app.alerts.story_cards(run.id)
    states = app.alerts.states()
    announce_new = run_id == run.id and app.alerts.first_done_run() != run.id  # the first rebuild sets the baseline
    born = app.alerts.born_stories(run.id) if run_id == run.id else set()
    stream_time = datetime.fromtimestamp(times.max(), timezone.utc).replace(tzinfo=None) if len(times) else None
    raised, changed = [], {}
    for sid, card in cards.items():
        announced, surging = states.get(sid, (False, False))
        pace = paces.get(sid)
        now_new = sid in born and not announced
        if now_new:
            announced = True
            if announce_new and card["size"] >= s.alert_new_min_size:
                raised.append(_alert("new", sid, card, pace, run_id, stream_time))
        now_surging = bool(pace and pace.surging) and not now_new
        if now_surging and not surging:
            raised.append(_alert("surging", sid, card, pace, run_id, stream_time))
        if (announced, now_surging) != states.get(sid, (False, False)):
            changed[sid] = (announced, now_surging)
    recorded = app.alerts.record(raised, changed) if (raised or changed) else []
    if recorded:
        _tell(app, recorded)
    return recorded


def _alert(kind: str, sid: int, card: dict, pace, run_id: int | None, stream_time) -> dict:
    details = {"usual_per_window": round(pace.usual, 2), "typical_per_window": round(pace.typical, 2)} if pace else {}
    return {"kind": kind, "story_id": sid, "topic_id": card["topic_id"], "topic_name": card["topic_name"], "title": card["title"],
            "size": card["size"], "recent": pace.recent if pace else 0, "run_id": run_id, "stream_time": stream_time, "details": details}


def _tell(app: App, recorded: list[dict]) -> None:
    from .adapters.notify import describe, write_atom_feed

    for a in recorded:
        log.warning("ALERT %s", describe(a))
        if app.webhook is not None:
            app.webhook.post({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in a.items()})
    s = app.settings
    s.reports_dir.mkdir(parents=True, exist_ok=True)
    write_atom_feed(s.reports_dir / "alerts.xml", app.alerts.latest(100), feed_id=f"urn:newsclust:{hashlib.sha256(str(s.home.resolve()).encode()).hexdigest()[:16]}")


def raise_alerts_safely(app: App, run_id: int | None = None) -> list[dict]:
    """Alerts never fail what they follow: a rebuild stays committed, a file stays ingested."""
    try:
        return raise_alerts(app, run_id)
    except Exception as exc:  # noqa: BLE001
        log.warning("alerts not raised (%s: %s)", type(exc).__name__, exc)
        return []


def _read_graph(app: App):
    """(document ids sorted, vectors, kNN lists) of the documents this rebuild clusters: the window's, and only
    those with a document row."""
    s = app.settings
    if app.neighbours is not None:  # the graph was kept up to date as documents arrived
        doc_ids, vectors, neigh = app.neighbours.neighbour_graph(since_ts=_window_start(app), by=s.window_by)
    else:
        doc_ids, vectors = app.store.all_vectors(since_ts=_window_start(app), by=s.window_by)
        neigh = knn(vectors, s.knn_k)
    return _documented_only(app, doc_ids, vectors, neigh)


def _story_name(name, titles: list[str], doc_ids: np.ndarray) -> tuple[str, list[str], list[int]]:
    """A story is called by its most central headline (people recognise a headline, not a keyword list)."""
    title = titles[name.title_row] if name.title_row >= 0 else ", ".join(name.keywords[:3])
    return (_clip(title) or ", ".join(name.keywords[:3]) or "untitled story", list(name.keywords), [int(doc_ids[r]) for r in name.representatives])


def _topic_name(name, doc_ids: np.ndarray, topic_id: int) -> tuple[str, list[str], list[int]]:
    """A topic is broad: its top keywords say more than any one headline."""
    return (", ".join(name.keywords[:3]) or f"topic {topic_id}", list(name.keywords), [int(doc_ids[r]) for r in name.representatives])


def _clip(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _documented_only(app: App, doc_ids: np.ndarray, vectors, neigh):
    """Milvus and SQLite agree on what a rebuild sees: a vector whose document row was never written (a file
    interrupted between the two writes, retried later) is left out, never clustered as a phantom headline."""
    known = app.repo.all_document_ids()
    if _window_start(app) is None and len(known) > len(doc_ids):
        # the reverse: rows whose vector the store lost are embedded again now and join the next rebuild
        restore_missing_vectors(app, np.setdiff1d(known, doc_ids, assume_unique=True))
    keep = np.isin(doc_ids, known, assume_unique=True)
    if keep.all():
        return doc_ids, vectors, neigh
    rows = np.flatnonzero(keep)
    log.warning("%d vector(s) in the store have no document row yet (their file is being retried): left out of this rebuild",
                len(doc_ids) - len(rows))
    window = np.asarray(vectors[rows], dtype=np.float32)
    return doc_ids[rows], window, complete_lists(subgraph(neigh, rows, len(doc_ids)), window)


def restore_missing_vectors(app: App, missing: np.ndarray | None = None, limit: int = 20_000) -> int:
    """Documents whose vector the store lost (a vector store reset, a restored backup) are embedded again, up to
    `limit` per call so a rebuild stays bounded; the rest follow at the next. The rebuild passes the ids it found
    missing while reading the graph; called alone, it compares the history with the store's ids."""
    if missing is None:
        known = app.repo.all_document_ids()
        if len(known) == 0:
            return 0
        missing = np.setdiff1d(known, app.store.all_vectors()[0], assume_unique=True)
    missing = missing[:limit]
    if len(missing) == 0:
        return 0
    log.warning("%d document(s) have no vector in the store: embedding them again", len(missing))
    texts = app.repo.document_texts(missing)
    times = app.repo.document_times(missing)
    for start in range(0, len(missing), 256):
        ids = missing[start : start + 256]
        vectors = app.embedder.embed([_text(*texts[int(i)]) for i in ids])
        published = np.array([_ts(times[int(i)][0]) for i in ids], np.int64)
        ingested = np.array([_ts(times[int(i)][1]) for i in ids], np.int64)
        app.store.upsert(ids, vectors, published, ingested)
    return len(missing)


def _text(title: str, description: str) -> str:
    return Headline(key="", title=title, description=description, url=None, published_at=None).text


def _previous_layout(app: App, prev_run, doc_ids: np.ndarray, neigh) -> np.ndarray | None:
    """The last map's coordinates as a start, so clusters stay where readers saw them."""
    if prev_run is None:
        return None
    stored = run_state.load_layout(app.settings.state_dir, prev_run.id)
    if stored is None:
        return None
    prev_ids, prev_xy = stored
    order = np.argsort(prev_ids)
    at = np.clip(np.searchsorted(prev_ids[order], doc_ids), 0, len(prev_ids) - 1)
    found = prev_ids[order][at] == doc_ids
    previous = np.full((len(doc_ids), 2), np.nan, np.float32)
    previous[found] = prev_xy[order][at[found]]
    return initial_positions(previous, neigh, np.random.default_rng(app.settings.seed))


def _window_start(app: App) -> int | None:
    """The window ends at the newest document's time, not the wall clock, so a replayed stream behaves like a live one."""
    s = app.settings
    if s.window_days <= 0:
        return None
    newest = app.repo.newest_time(s.window_by)
    if newest is None:
        return None
    return _ts(newest - timedelta(days=s.window_days))


def write_report(app: App, run_id: int | None = None, out: Path | None = None, standalone: bool = False) -> Path:
    """Render a run's page from the SQLite history and its stored layout; refresh latest.html and index.html."""
    from .report.page import render_report
    from .report.publish import publish

    s = app.settings
    run = app.repo.run(run_id) if run_id else app.repo.latest_run()
    if run is None or run.status != "done":
        raise LookupError(f"no finished rebuild {'with id ' + str(run_id) if run_id else 'yet'}: run `newsclust rebuild` first")
    layout = run_state.load_layout(s.state_dir, run.id)
    html = render_report(app.repo, run, layout, max_points=s.report_max_points, seed=s.seed, standalone=standalone)
    latest = app.repo.latest_run()
    return publish(s.reports_dir, run.id, html, app.repo.done_runs(), is_latest=latest is not None and latest.id == run.id,
                   keep_runs=s.report_keep_runs, out=out, standalone=standalone).page


EXPORT_COLUMNS = ["guid", "title", "story_id", "story_name", "topic_id", "topic_name", "probability", "outlier_score", "assigned_by",
                  "run_id", "cluster_id"]


def search(app: App, query: str, k: int = 10, serving: bool = False) -> list[dict]:
    """The headlines nearest to `query`, with their story and topic. Beside a running serve (which holds a Milvus
    Lite file) it reads the writer's vector copy under HOME/state/, never opening Milvus as a second writer."""
    from .adapters.vector_cache import CacheReader

    s = app.settings
    vector = app.embedder.embed([query])
    fetch = 2 * k + 8  # over-fetch: a vector whose document row is not written yet is dropped
    reader = CacheReader(s.state_dir / f"vectors-{s.collection}", app.embedder.dim, source=f"{s.resolved_milvus_uri}#{s.collection}")
    if reader.usable:
        ids, sims = reader.search(vector, fetch)
    elif not serving or s.resolved_milvus_uri.startswith(("http://", "https://", "tcp://")):
        ids, dist = app.store.search(vector, fetch)
        sims = 1.0 - dist.astype(np.float64) ** 2 / 2.0
    else:
        raise LookupError("search beside a running serve reads its vector copy under HOME/state/, and there is none "
                          "(vector_cache = false): stop serve, or use a Milvus server")
    found = [(int(i), float(sim)) for i, sim in zip(ids[0], sims[0]) if i >= 0]
    docs = app.reader.documents([i for i, _ in found])
    out = []
    for doc_id, sim in found:
        if doc_id in docs:
            d = docs[doc_id]
            out.append({"similarity": round(sim, 4), "document_id": doc_id, "title": d["title"], "published_at": d["published_at"],
                        "story_id": d["story_id"], "story_name": d["story_name"], "topic_id": d["topic_id"], "topic_name": d["topic_name"]})
    return out[:k]


def story_detail(app: App, story_id: int) -> dict | None:
    return app.reader.story(story_id)


def topic_detail(app: App, topic_id: int) -> dict | None:
    return app.reader.topic(topic_id)


def export_csv(app: App, out) -> int:
    """One row per document; noise is -1 at either level; a document no rebuild or prediction has placed yet has empty
    fields. cluster_id repeats story_id for scripts written before topics existed."""
    w = SafeCsvWriter(out)
    w.writerow(EXPORT_COLUMNS)
    n = 0
    blank = lambda v: "" if v is None else v  # noqa: E731
    for r in app.repo.export_rows():
        guid = r.key.split(":", 1)[1] if r.key.startswith(("guid:", "url:")) else r.key
        w.writerow([guid, r.title, blank(r.cluster_id), blank(r.story_name), blank(r.topic_id), blank(r.topic_name),
                    "" if r.probability is None else f"{r.probability:.4f}", "" if r.outlier_score is None else f"{r.outlier_score:.4f}",
                    r.assigned_by or "", r.run_id or "", blank(r.cluster_id)])
        n += 1
    return n


def status(app: App, serving_pid: int | None = None) -> dict:
    """The history's counts, plus what the serving process alone knows (files it is retrying, a rebuild's backoff)."""
    st = app.repo.status()
    inbox = app.settings.inbox
    st["inbox_backlog"] = sum(1 for p in inbox.iterdir() if p.is_file() and not p.name.startswith(".")) if inbox.exists() else 0
    st["serving_pid"] = serving_pid
    live = _serving_status(app.settings.state_dir / "service.json") if serving_pid else None
    if live:
        st["rebuild_running_since"] = live.get("rebuild_running_since") or st["rebuild_running_since"]
        st["rebuild_backoff_until"] = live.get("rebuild_backoff_until")
        if live.get("last_error") and (st["last_error"] is None or (live["last_error"]["at"] or "") >= (st["last_error"]["at"] or "")):
            st["last_error"] = live["last_error"]
        waiting = {w["file"]: w for w in st["files_waiting"]}
        for name, entry in live.get("files_waiting", {}).items():
            waiting[name] = {"file": name, "state": entry.get("state"), "attempts": entry.get("attempts"), "reason": entry.get("reason"),
                             "next_try_at": entry.get("next_try_at")}
        st["files_waiting"] = list(waiting.values())
    return st


def _serving_status(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def format_status(st: dict) -> str:
    """`newsclust status` for people: a few lines, the problems last."""
    files = st["files"]
    lines = [
        f"serving          {'pid ' + str(st['serving_pid']) if st['serving_pid'] else 'no (serve is not running)'}",
        f"documents        {st['documents']:,}",
        f"stories          {st['clusters']:,} (noise {st['noise']:,}) in run {st['last_rebuild_run'] or '-'} at {st['last_rebuild_at'] or 'never'}",
        f"pending          {st['pending_arrivals']:,} arrivals since that rebuild; inbox backlog {st['inbox_backlog']} file(s)",
        f"files            " + (", ".join(f"{n} {k}" for k, n in sorted(files.items())) or "none yet"),
    ]
    if st.get("rebuild_running_since"):
        lines.append(f"rebuilding       since {st['rebuild_running_since']} UTC")
    if st.get("rebuild_backoff_until"):
        lines.append(f"rebuild backoff  next try at {st['rebuild_backoff_until']} UTC")
    for w in st["files_waiting"]:
        when = f", next try {w['next_try_at']} UTC" if w.get("next_try_at") else ""
        lines.append(f"{w['state']:16} {w['file']} (tries {w['attempts']}{when}): {w['reason']}")
    if st.get("last_error"):
        lines.append(f"last error       {st['last_error']['at']} UTC: {st['last_error']['what']}")
    return "\n".join(lines)
