"""The things the service does: ingest a file, place arrivals, rebuild, write the report, export.

Each takes the wired App (bootstrap.py) and holds the order of steps; the algorithms live in
clustering/, the I/O in adapters/.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import time
from datetime import timedelta, timezone
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from . import state as run_state
from .adapters.sql.repository import utcnow
from .clustering.assign import PredictionState, dense_groups, place
from .clustering.graph import knn
from .clustering.hdbscan_fit import Anchor, HdbscanParams, fit_clusters, steady_min_cluster_size
from .clustering.identity import match_clusters
from .clustering.layout import initial_positions, layout_2d
from .clustering.naming import name_clusters
from .domain import NOISE, Headline, Rejected
from .ingest import BadFile, read_headlines
from .ports import KeepsGraph

log = logging.getLogger("newsclust")

Progress = Callable[[str, int], None]  # (stage, items done) — the CLI shows it, tests ignore it


def _no_progress(stage: str, n: int) -> None:
    pass


@dataclass
class IngestResult:
    file: str
    state: str  # processed, failed, duplicate
    rows_seen: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    predicted: int = 0
    encoding: str | None = None
    reason: str | None = None
    moved_to: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _move(path: Path, folder: Path) -> Path:
    """Into folder under the same name; a name already there gets a time suffix instead of being overwritten."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists() or target.is_symlink():
        target = folder / f"{path.stem}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}{path.suffix}"
    shutil.move(str(path), str(target))
    return target


def _fail(app, path: Path, reason: str, rejects: list[Rejected] | None = None) -> Path:
    moved = _move(path, app.settings.failed_dir) if (path.exists() or path.is_symlink()) else app.settings.failed_dir / path.name
    moved.with_name(moved.name + ".reason.txt").write_text(reason + "\n", encoding="utf-8")
    if rejects:
        _write_rejects(moved.with_name(moved.name + ".rejects.csv"), rejects)
    return moved


def _write_rejects(target: Path, rejects: list[Rejected]) -> None:
    columns = sorted({k for r in rejects for k in r.row})
    with target.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["line", "reason", *columns])
        for r in rejects:
            w.writerow([r.line, r.reason, *(r.row.get(c, "") for c in columns)])


class Interrupted(Exception):
    """Shutdown asked mid-file: what is written stays (idempotent), the file stays in the inbox for the restart."""


def recover(app) -> dict[str, int]:
    """At a writer's start: runs and files a killed process left half-done are marked so; their files are still in the inbox."""
    return app.repo.mark_interrupted()


def ingest_file(app, path: Path, progress: Progress = _no_progress, should_stop: Callable[[], bool] = lambda: False) -> IngestResult:
    """One file through parse -> dedup -> embed -> Milvus -> SQLite -> placement -> processed/ or failed/.

    Milvus is written before SQLite and both writes are idempotent (primary keys come from
    document identity), so a crash anywhere leaves the file in the inbox to be redone safely.
    """
    s = app.settings
    result = IngestResult(file=path.name, state="failed")
    if path.is_symlink() or not path.is_file():
        what = "a symlink" if path.is_symlink() else "a directory" if path.is_dir() else "not a regular file"
        result.reason = f"{path.name}: {what}; drop regular CSV files into the inbox"
        result.moved_to = str(_fail(app, path, result.reason))
        return result

    digest = sha256_of(path)
    if app.repo.processed_file(digest) is not None:
        result.state, result.reason = "duplicate", f"{path.name}: same bytes as a file already ingested; nothing to do"
        result.moved_to = str(_move(path, s.processed_dir))
        return result

    file_id = app.repo.start_file(path.name, digest, path.stat().st_size)
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
            stored, dup, predicted = _store_headlines(app, fresh, file_id, t, should_stop)
            result.stored += stored
            result.duplicates += dup
            result.predicted += predicted
            progress("rows", result.rows_seen)
    except Interrupted:
        app.repo.finish_file(file_id, "interrupted", seen=result.rows_seen, stored=result.stored, duplicate=result.duplicates,
                             rejected=len(rejects), encoding=result.encoding, reason="shutdown before the end of the file; it stays in the inbox")
        result.state, result.reason = "interrupted", "shutdown before the end of the file; it stays in the inbox and is taken again at restart"
        return result
    except BadFile as exc:
        result.reason = str(exc)
    except Exception as exc:  # noqa: BLE001 — one file's failure must not stop the stream
        log.exception("ingest of %s failed", path.name)
        result.reason = f"{path.name}: internal error while ingesting: {type(exc).__name__}: {exc}"
    result.rejected = len(rejects)
    result.seconds = {k: round(v, 3) for k, v in t.items()}
    if result.reason:
        app.repo.finish_file(file_id, "failed", seen=result.rows_seen, stored=result.stored, duplicate=result.duplicates,
                             rejected=result.rejected, encoding=result.encoding, reason=result.reason)
        result.moved_to = str(_fail(app, path, result.reason, rejects))
        return result
    if rejects:
        reason = f"{path.name}: {len(rejects)} of {result.rows_seen} rows rejected (see the rejects CSV for line numbers and reasons); the other rows were ingested"
        rejects_path = s.failed_dir / f"{path.name}.rejects.csv"
        s.failed_dir.mkdir(parents=True, exist_ok=True)
        _write_rejects(rejects_path, rejects)
        rejects_path.with_name(path.name + ".reason.txt").write_text(reason + "\n", encoding="utf-8")
        result.reason = reason
    app.repo.finish_file(file_id, "processed", seen=result.rows_seen, stored=result.stored, duplicate=result.duplicates,
                         rejected=result.rejected, encoding=result.encoding, reason=result.reason)
    result.state = "processed"
    app.failpoints.reach("move")
    result.moved_to = str(_move(path, s.processed_dir))
    return result


def _store_headlines(app, headlines: list[Headline], file_id: int, t: dict[str, float], should_stop=lambda: False) -> tuple[int, int, int]:
    if not headlines:
        return 0, 0, 0
    t0 = time.perf_counter()
    known = app.repo.existing_ids([h.id for h in headlines])
    new = [h for h in headlines if h.id not in known]
    t["sqlite"] += time.perf_counter() - t0
    if not new:
        return 0, len(headlines), 0
    predicted = 0
    bs = 256  # small enough that a shutdown between batches comes within seconds
    for s in range(0, len(new), bs):
        if should_stop():
            raise Interrupted
        batch = new[s : s + bs]
        t0 = time.perf_counter()
        vectors = app.embedder.embed([h.text for h in batch])
        app.failpoints.reach("embed")
        t["embed"] += time.perf_counter() - t0
        now = utcnow()
        ids = np.array([h.id for h in batch], np.int64)
        t0 = time.perf_counter()
        app.store.upsert(ids, vectors, np.array([_ts(h.published_at) for h in batch], np.int64), np.full(len(batch), _ts(now), np.int64))
        app.failpoints.reach("milvus")
        t["milvus"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        app.repo.add_documents(batch, file_id, now)
        app.failpoints.reach("sqlite")
        t["sqlite"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        predicted += assign_arrivals(app, ids, vectors)
        t["predict"] += time.perf_counter() - t0
    return len(new), len(headlines) - len(new), predicted


def _ts(dt) -> int:
    """Unix seconds of a naive-UTC datetime (0 for unknown)."""
    return int(dt.replace(tzinfo=timezone.utc).timestamp()) if dt is not None else 0


def assign_arrivals(app, ids: np.ndarray, vectors: np.ndarray) -> int:
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
    app.repo.record_predictions(run.id, ids, placed.labels, placed.probabilities, placed.outlier_scores)
    return len(ids)


def new_story_in_noise_pool(app) -> bool:
    """Arrivals prediction left as noise, grouped among themselves: a group as big as the last run's
    smallest allowed cluster and as tight as the stories it found is a new story, worth a rebuild now."""
    run = app.repo.latest_run()
    if run is None:
        return False
    s = app.settings
    size = json.loads(run.params or "{}").get("min_cluster_size_used") or s.min_cluster_size or 5
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
    clusters: int
    noise: int
    min_cluster_size: int
    events: dict[str, int]
    seconds: dict[str, float]
    report: str | None = None


def rebuild(app, write_report_after: bool = True, progress: Progress = _no_progress) -> RebuildResult:
    """Full rebuild: kNN graph (kept by the store, else built from Milvus's vectors) -> HDBSCAN -> persistent ids
    -> names -> one SQLite commit."""
    s = app.settings
    prev = app.repo.latest_run()
    params = HdbscanParams(min_cluster_size=s.min_cluster_size, min_samples=s.min_samples, selection=s.cluster_selection,
                           recipe=s.recipe, umap_max_documents=s.umap_max_documents, umap_dims=s.umap_dims, seed=s.seed)
    run_id = app.repo.start_run({**asdict(params), "knn_k": s.knn_k})
    t: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        if isinstance(app.store, KeepsGraph):
            # the graph was kept up to date as documents arrived (adapters/vector_cache.py)
            doc_ids, vectors, neigh = app.store.neighbour_graph(since_ts=_window_start(app), by=s.window_by)
        else:
            doc_ids, vectors = app.store.all_vectors(since_ts=_window_start(app), by=s.window_by)
            neigh = knn(vectors, s.knn_k)
        t["graph"] = time.perf_counter() - t0
        progress("vectors", len(doc_ids))

        if not s.min_cluster_size:
            previous_size = json.loads(prev.params or "{}").get("min_cluster_size_used") if prev else None
            params = replace(params, min_cluster_size=steady_min_cluster_size(len(doc_ids), previous_size))
        prev_docs, prev_labels = app.repo.run_labels(prev.id) if prev else (np.zeros(0, np.int64), np.zeros(0, np.int64))
        t0 = time.perf_counter()
        anchor = None
        if s.stabilize and len(prev_docs):
            # hold what users have seen: the last run's members and the arrivals placed since
            anchor = Anchor(prev_docs, prev_labels, doc_ids, s.hold_margin, app.repo.placed_labels(prev.id))
        fit = fit_clusters(neigh, vectors, params, anchor)
        t["cluster"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        matching = match_clusters(prev_docs, prev_labels, doc_ids, fit.labels, app.repo.next_cluster_id(), s.match_min_jaccard)
        labels = np.where(fit.labels >= 0, matching.ids[np.maximum(fit.labels, 0)] if len(matching.ids) else NOISE, NOISE).astype(np.int64)
        t["match"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        texts_by_id = app.repo.document_texts(doc_ids)
        texts = [" ".join(texts_by_id.get(int(i), ("", ""))) for i in doc_ids]
        names = {}
        for label, name in name_clusters(texts, fit.labels, vectors).items():
            cid = int(matching.ids[label])
            names[cid] = (", ".join(name.keywords[:3]) or f"cluster {cid}", list(name.keywords), [int(doc_ids[r]) for r in name.representatives])
        t["name"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        run_state.save_prediction_state(s.state_dir, run_id, PredictionState(
            doc_ids=doc_ids, labels=labels, probabilities=fit.probabilities, outlier_scores=fit.outlier_scores,
            core_distances=fit.core_distances, cluster_ids=matching.ids, cluster_max_edge=fit.cluster_max_edge,
            cluster_min_core=fit.cluster_min_core, min_samples=s.min_samples,
        ))
        t["save_state"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        app.failpoints.reach("rebuild")
        app.repo.commit_run(run_id, doc_ids=doc_ids, labels=labels, probabilities=fit.probabilities, outlier_scores=fit.outlier_scores,
                            names=names, events=matching.events, timings={k: round(v, 3) for k, v in t.items()},
                            params={**asdict(params), "knn_k": s.knn_k, "min_cluster_size_used": fit.min_cluster_size, "recipe_used": fit.recipe})
        t["commit"] = time.perf_counter() - t0
    except Exception as exc:
        app.repo.fail_run(run_id, f"{type(exc).__name__}: {exc}")
        raise
    app.forget_prediction_state()
    events: dict[str, int] = {}
    for e in matching.events:
        events[e.kind] = events.get(e.kind, 0) + 1
    result = RebuildResult(run_id=run_id, documents=len(doc_ids), clusters=fit.n_clusters, noise=int((labels == NOISE).sum()),
                           min_cluster_size=fit.min_cluster_size, events=events, seconds={k: round(v, 3) for k, v in t.items()})
    if write_report_after:
        t0 = time.perf_counter()
        xy = layout_2d(vectors, seed=s.seed, init=_previous_layout(app, prev, doc_ids, neigh), neigh=neigh)
        run_state.save_layout(s.state_dir, run_id, doc_ids, xy)
        result.seconds["layout"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        result.report = str(write_report(app, run_id))
        result.seconds["report"] = round(time.perf_counter() - t0, 3)
    return result


def _previous_layout(app, prev_run, doc_ids: np.ndarray, neigh) -> np.ndarray | None:
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


def _window_start(app) -> int | None:
    """The window ends at the newest document's time, not the wall clock, so a replayed stream behaves like a live one."""
    s = app.settings
    if s.window_days <= 0:
        return None
    newest = app.repo.newest_time(s.window_by)
    if newest is None:
        return None
    return _ts(newest - timedelta(days=s.window_days))


def write_report(app, run_id: int | None = None, out: Path | None = None) -> Path:
    """Render a run's page from the SQLite history and its stored layout; refresh latest.html and index.html."""
    from .report.page import render_index, render_report

    s = app.settings
    run = app.repo.run(run_id) if run_id else app.repo.latest_run()
    if run is None or run.status != "done":
        raise LookupError(f"no finished rebuild {'with id ' + str(run_id) if run_id else 'yet'}: run `newsclust rebuild` first")
    layout = run_state.load_layout(s.state_dir, run.id)
    html = render_report(app.repo, run, layout, max_points=s.report_max_points, seed=s.seed)
    s.reports_dir.mkdir(parents=True, exist_ok=True)
    if out:
        _write_plotly_js(out.parent)
        _atomic_write(out, html)
        return out
    _write_plotly_js(s.reports_dir)
    page = s.reports_dir / f"run-{run.id}.html"
    _atomic_write(page, html)
    latest = app.repo.latest_run()
    if latest is not None and latest.id == run.id:
        _atomic_write(s.reports_dir / "latest.html", html)
    _atomic_write(s.reports_dir / "index.html", render_index(app.repo.done_runs()))
    return page


def _write_plotly_js(folder: Path) -> None:
    """plotly.js beside the reports, once: pages reference it relatively and open offline."""
    from plotly.offline import get_plotlyjs

    target = folder / "plotly.min.js"
    if not target.exists():
        _atomic_write(target, get_plotlyjs())


def _atomic_write(target: Path, text: str) -> None:
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)


EXPORT_COLUMNS = ["guid", "cluster_id", "probability", "outlier_score", "assigned_by", "run_id"]


def export_csv(app, out) -> int:
    """One row per document; noise is cluster_id -1; a document no rebuild or prediction has placed yet has empty fields."""
    w = csv.writer(out)
    w.writerow(EXPORT_COLUMNS)
    n = 0
    for r in app.repo.export_rows():
        guid = r.key.split(":", 1)[1] if r.key.startswith(("guid:", "url:")) else r.key
        w.writerow([guid, "" if r.cluster_id is None else r.cluster_id, "" if r.probability is None else f"{r.probability:.4f}",
                    "" if r.outlier_score is None else f"{r.outlier_score:.4f}", r.assigned_by or "", r.run_id or ""])
        n += 1
    return n


def status(app) -> dict:
    st = app.repo.status()
    inbox = app.settings.inbox
    st["inbox_backlog"] = sum(1 for p in inbox.iterdir() if p.is_file() and not p.name.startswith(".")) if inbox.exists() else 0
    return st

