"""Quality harness at both levels: stream labelled CSVs in time-ordered chunks through the real ingest -> predict -> rebuild path.

    python bench/quality.py                       # both: story level on stories_2k_labeled.csv, topic level on agnews_4k_labeled.csv
    python bench/quality.py --level story         # one of them
    python bench/quality.py --csv FILE --label topic --level topic [--chunks 10] [--json OUT] [--set NAME=VALUE]
    python bench/quality.py --synthetic topic_structured|story_shaped [--n 20000]   # generated vectors, topic level

At the topic level every recipe also gets the largest cluster's share of all documents and the stories per
cluster (median, mean, share holding one story; stories: our final story level, or the generator's truth),
the figures the topic guards hold. --synthetic fits straight from the kNN graph of generated vectors
(bench/synthetic.py), with a ceiling row: each vector labelled by the nearest true topic centroid.

Rows are sorted by `published_at` (file order where absent) and cut into --chunks files; each file is
ingested (arrivals placed by prediction, `assigned_by='predict'`, both levels), then a full rebuild runs.
The label column is dropped before ingest: labels are used only to score, never to pick a setting.

Per level (story: `assignments.cluster_id`; topic: `assignments.topic_id`) it prints AMI (noise as one
label), pairwise F1 and BCubed F1 (noise documents as singletons), clusters against the true count and
noise share, for our final rebuild and for baselines run in the same process on the same vectors (read
back from the store): BERTopic's recipe (UMAP 5-d -> HDBSCAN mcs 10), fast_hdbscan on our kNN graph
(mcs 5 and sqrt(n)/2), a single pass in time order (join the most similar centroid at cosine >= tau,
else start one: tau 0.5 as a fixed default, and the best tau chosen WITH THE LABELS, an upper bound no
stream could pick) and the tutorial's dense-matrix HDBSCAN. Then, per rebuild and per level: clusters,
noise, the share of documents clustered in both this and the last rebuild that kept their id, and the
ARI between each arrival's predicted label and its label at the next rebuild (arrivals placed by the
prediction and clustered by the rebuild), with the share of arrivals placed at once. Then what a follower
of each level's ids sees (issue 22): ids whose majority label at the end differs from the one they were
born with (count, and the share of clustered documents they hold), the share of arrivals placed at once
among those the rebuild put into a cluster that already existed (with --rebuild-every, split by the file since the
rebuild that brought them), the share of placed ones the rebuild
kept (and where the rebuild moved the others: noise, a story new in that run, another story), and the 'new' alerts: precision (distinct labels / alerts), the distinct labels told (recall: of the labels
born after the first rebuild, which sets the baseline and tells nothing) and how many had no recent headline.
Last, the issue's targets for that level, met or missed.

    python bench/quality.py --csv FRANCHISE.csv --label story --level story --chunks 6   # a generated stream:
    python -c "from bench.synthetic import franchise_stream, write_rows; write_rows('FRANCHISE.csv', franchise_stream())"

Embeddings are cached under bench/out/ (by a hash of the texts the pipeline embeds), so reruns skip the model.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.metrics import bcubed_prf, scores  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out"
DEFAULT_CSV = DATA / "agnews_4k_labeled.csv"
LEVELS = {"story": (DATA / "stories_2k_labeled.csv", "story"), "topic": (DATA / "agnews_4k_labeled.csv", "topic")}
TAUS = tuple(round(t, 2) for t in np.arange(0.0, 0.851, 0.05))
FIXED_TAU = 0.5
REPEATS_SHOWN = 10  # alerts of labels told more than once, listed under the follower table (a topic-labelled file has many)
# the "done when" (issue 13), per level
TARGETS = {"story": {"pair_f1": 0.95, "bcubed_f1": 0.93, "arrival_ari": 0.90, "kept_id": 0.95},
           "topic": {"ami": 0.40, "noise_max": 0.35, "margin_over_bertopic": 0.08}}


# ---- embeddings: the pipeline's embedder, cached by text ----------------------------------------------
class CachedEmbedder:
    """The configured embedder behind a per-data-set cache (bench/out/quality-<hash>.npy): the pipeline embeds
    exactly what it would, the model loads only when a text is missing."""

    def __init__(self, settings, texts: list[str]):
        self.settings = settings
        self._inner = None
        key = hashlib.sha256(("\n".join(texts) + f"\n{settings.embedder}|{settings.max_tokens}|{settings.embed_precision}").encode()).hexdigest()[:16]
        path = OUT / f"quality-{settings.embedder}-{key}.npy"
        if path.exists():
            vectors = np.load(path)
        else:
            t0 = time.perf_counter()
            vectors = np.asarray(self.inner.embed(texts), np.float32)
            OUT.mkdir(parents=True, exist_ok=True)
            np.save(path, vectors)
            print(f"embedded {len(texts)} texts in {time.perf_counter() - t0:.0f} s -> {path.relative_to(ROOT)}", file=sys.stderr)
        self._cache = dict(zip(texts, vectors))
        self.dim = int(vectors.shape[1])
        self.misses = 0

    @property
    def inner(self):
        if self._inner is None:
            from service.adapters.embedders import make_embedder

            s = self.settings
            self._inner = make_embedder(s.embedder, s.embedder_path, s.embed_batch_size, s.max_text_chars, s.max_tokens, s.embed_precision, s.embed_device)
        return self._inner

    @property
    def name(self) -> str:
        return f"{self.settings.embedder} (cached)"

    def embed(self, texts):
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            self.misses += len(missing)
            self._cache.update(zip(missing, np.asarray(self.inner.embed(missing), np.float32)))
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self._cache[t] for t in texts])


# ---- baselines ----------------------------------------------------------------------------------------
def tutorial_recipe(vectors: np.ndarray) -> np.ndarray:
    """The tutorial: each row's 50 nearest distances in a dense n×n matrix -> hdbscan precomputed.

    Symmetrised (np.minimum(D, D.T)): without it hdbscan aborts or segfaults at this size (a known hdbscan failure on asymmetric precomputed input).
    """
    import hdbscan

    from service.clustering.graph import knn

    n = len(vectors)
    neigh = knn(vectors, min(50, n - 1))
    d = np.full((n, n), 2.0, np.float64)  # far for unlisted pairs: the max distance between unit vectors
    rows = np.repeat(np.arange(n), neigh.k)
    d[rows, neigh.indices.ravel()] = neigh.distances.ravel()
    d = np.minimum(d, d.T)
    np.fill_diagonal(d, 0.0)
    return hdbscan.HDBSCAN(metric="precomputed", min_cluster_size=3, min_samples=3).fit(d).labels_


def bertopic_recipe(vectors: np.ndarray, seed: int = 42) -> np.ndarray:
    """BERTopic's default: UMAP to 5-d (n_neighbors=15, cosine) -> HDBSCAN min_cluster_size=10, eom."""
    import hdbscan
    import umap

    low = umap.UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", random_state=seed, n_jobs=1).fit_transform(vectors)
    return hdbscan.HDBSCAN(min_cluster_size=10, metric="euclidean", cluster_selection_method="eom").fit(low).labels_


def raw_graph_recipe(neigh, min_cluster_size: int, min_samples: int = 5) -> np.ndarray:
    """fast_hdbscan straight on our sparse kNN graph (the graph a rebuild reads), eom."""
    from fast_hdbscan.hdbscan import fast_hdbscan

    from service.clustering.graph import directed_graph

    return np.asarray(fast_hdbscan(directed_graph(neigh), metric="precomputed", min_samples=min_samples,
                                   min_cluster_size=int(min_cluster_size))[0])


def single_pass(vectors: np.ndarray, tau: float) -> np.ndarray:
    """Each document, in the order given (time order), joins the most similar centroid at cosine >= tau, else starts one."""
    n, dim = vectors.shape
    sums = np.zeros((n, dim), np.float64)
    cents = np.zeros((n, dim), np.float32)  # unit centroids, kept as they move
    labels = np.empty(n, np.int64)
    c = 0
    for i, v in enumerate(vectors):
        if c:
            sim = cents[:c] @ v
            j = int(sim.argmax())
            if sim[j] >= tau:
                sums[j] += v
                cents[j] = sums[j] / np.linalg.norm(sums[j])
                labels[i] = j
                continue
        sums[c] = v
        cents[c] = v / np.linalg.norm(v)
        labels[i] = c
        c += 1
    return labels


def single_pass_tuned(vectors: np.ndarray, truth: np.ndarray, level: str) -> tuple[np.ndarray, float]:
    """The best tau on the labels (BCubed F1 at story level, AMI at topic level): an upper bound for the recipe.

    Walks TAUS upwards and stops two steps past the best (the curve has one peak; high taus, the slow ones, rarely run)."""
    from sklearn.metrics import adjusted_mutual_info_score

    def quality(labels):
        return bcubed_prf(truth, labels)[2] if level == "story" else adjusted_mutual_info_score(truth, labels)

    best, best_q, since = None, -np.inf, 0
    for tau in TAUS:
        labels = single_pass(vectors, tau)
        q = quality(labels)
        if q > best_q:
            best, best_q, since = (labels, tau), q, 0
        else:
            since += 1
            if since >= 2:
                break
    return best


def _graph(app, vectors: np.ndarray, doc_ids: np.ndarray):
    """Our kNN graph as a rebuild reads it (rows in doc_ids order); our own knn at the configured k if that path moved."""
    try:
        from service.usecases import read_graph

        ids, _, neigh = read_graph(app, app.open_neighbours())
        if np.array_equal(np.asarray(ids), doc_ids):
            return neigh
    except Exception as exc:  # noqa: BLE001 — a private helper: fall back rather than fail the bench
        print(f"(kNN graph recomputed: {type(exc).__name__}: {exc})", file=sys.stderr)
    from service.clustering.graph import knn

    return knn(vectors, app.settings.knn_k)


# ---- the stream ---------------------------------------------------------------------------------------
def _read_rows(csv_path: Path, label_col: str) -> tuple[list[dict], list[str]]:
    with csv_path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        fields = [f for f in reader.fieldnames if f != label_col]
    if "published_at" in fields:
        rows.sort(key=lambda r: r.get("published_at") or "")  # stable: file order among equal times
    return rows, fields


def _shuffled(rows: list[dict], window: int, seed: int) -> list[dict]:
    """The rows shuffled inside consecutive blocks of `window` rows: late and early arrivals (a feed does not deliver
    in the order of publication); a window >= the rows shuffles them all, 0 or 1 keeps time order."""
    if window <= 1:
        return rows
    rng = np.random.default_rng(seed)
    return [rows[i] for start in range(0, len(rows), window) for i in start + rng.permutation(min(window, len(rows) - start))]


def _predictions(app) -> dict[int, tuple[int, int]]:
    """(story, topic) labels given by prediction to the arrivals since the last rebuild."""
    from sqlalchemy import text

    run = app.runs.latest_run()
    if run is None:
        return {}
    with app.engine.connect() as c:
        rows = c.execute(text("SELECT document_id, cluster_id, topic_id FROM assignments WHERE run_id=:r AND assigned_by='predict'"),
                         {"r": run.id})
        return {int(d): (int(s), -1 if t is None else int(t)) for d, s, t in rows}


def _compare(prev: dict[int, int], now: dict[int, int], predicted: dict[int, int], pooled: list) -> dict:
    """Kept-id share against the last rebuild and arrival-vs-rebuild agreement, for one level; the arrivals'
    (predicted, rebuilt) label pairs are added to pooled (ids persist across runs, so pairs pool)."""
    out: dict = {}
    both = [d for d, l in prev.items() if l >= 0 and now.get(d, -1) >= 0]
    if both:
        out["kept_id"] = round(float(np.mean([prev[d] == now[d] for d in both])), 4)
        out["clustered_in_both"] = len(both)
    if predicted:
        placed = [d for d, l in predicted.items() if l >= 0]
        out["arrivals"] = len(predicted)
        out["placed"] = round(len(placed) / len(predicted), 4)
        pboth = [d for d in placed if now.get(d, -1) >= 0]
        out["placed_then_noise"] = round(1 - len(pboth) / len(placed), 4) if placed else None
        pooled.extend((predicted[d], now[d]) for d in pboth)
        if pboth:
            out["arrival_ari"] = round(float(adjusted_rand_score([predicted[d] for d in pboth], [now[d] for d in pboth])), 4)
            out["arrival_same_id"] = round(float(np.mean([predicted[d] == now[d] for d in pboth])), 4)  # ids persist: directly comparable
            out["arrival_n"] = len(pboth)
    return out


class Follower:
    """What a follower of one level's ids sees, over the whole stream (issue 22): ids that changed event, arrivals
    placed at once among those the rebuild put into a cluster that already existed, placed ones kept, new alerts."""

    def __init__(self):
        self.born_event: dict[int, object] = {}  # id -> its members' majority label in the first run it appeared in
        self.into_existing = self.into_existing_placed = self.placed = self.placed_kept = 0
        self.new_alert_events: list[object] = []
        self.new_without_recent = 0
        self.new_alert_list: list[dict] = []  # each 'new' alert: rebuild, story id, majority label, size, recent
        self.rebuilds = 0
        self.baseline: set | None = None  # labels with a headline in the first rebuild
        self.moved = [0, 0, 0]  # placed arrivals the rebuild moved: to noise, to a story new in that run, to another old story
        self.labels: set = set()
        self.by_file: dict[int, list[int]] = {}  # file since the last rebuild (1: the first) -> [into existing, of them placed at once]

    def after_rebuild(self, prev: dict[int, int], now: dict[int, int], predicted: dict[int, int], truth_of: dict[int, object],
                      alerts: list[dict] = (), file_of: dict[int, int] | None = None) -> None:
        majority = _majorities(now, truth_of)
        self.rebuilds += 1
        if self.baseline is None:  # the first rebuild announces nothing: labels it saw cannot be told as new
            self.baseline = {truth_of.get(d) for d in now}
            self.labels = set(truth_of.values())
        for cid, event in majority.items():
            self.born_event.setdefault(cid, event)
        existing = {l for l in prev.values() if l >= 0}
        for d, p in predicted.items():
            r = now.get(d, -1)
            if r >= 0 and r in existing:
                self.into_existing += 1
                self.into_existing_placed += p >= 0
                cell = self.by_file.setdefault((file_of or {}).get(d, 0), [0, 0])
                cell[0] += 1
                cell[1] += p >= 0
            if p >= 0:
                self.placed += 1
                self.placed_kept += p == r
                if p != r:  # where the rebuild moved it: noise, a story new in this run, another story users knew
                    self.moved[0 if r < 0 else 1 if r not in existing else 2] += 1
        for a in alerts:
            if a.get("kind") == "new":
                self.new_alert_events.append(majority.get(int(a["story_id"])))
                self.new_alert_list.append({"rebuild": self.rebuilds, "story_id": int(a["story_id"]), "label": majority.get(int(a["story_id"])),
                                            "size": a.get("size"), "recent": a.get("recent"), "title": a.get("title")})
                self.new_without_recent += int(a.get("recent") or 0) == 0
        self.last = (now, majority)

    def summary(self) -> dict:
        now, majority = getattr(self, "last", ({}, {}))
        clustered = [l for l in now.values() if l >= 0]
        changed = {cid for cid, event in majority.items() if self.born_event.get(cid) != event}
        held = sum(1 for l in clustered if l in changed)
        out = {"ids_changed_event": len(changed), "ids": len(majority),
               "changed_event_doc_share": round(held / len(clustered), 4) if clustered else None,
               "into_existing": self.into_existing,
               "placed_at_once_of_existing": round(self.into_existing_placed / self.into_existing, 4) if self.into_existing else None,
               "placed": self.placed, "placed_kept": round(self.placed_kept / self.placed, 4) if self.placed else None,
               "moved_to_noise": self.moved[0], "moved_to_new_story": self.moved[1], "moved_to_old_story": self.moved[2],
               "into_existing_by_file": {k: tuple(v) for k, v in sorted(self.by_file.items())}}
        if self.new_alert_events:
            out.update(new_alerts=len(self.new_alert_events),
                       new_alert_precision=round(len(set(self.new_alert_events)) / len(self.new_alert_events), 4),
                       alerted_stories=len(set(self.new_alert_events)),  # distinct labels told as new: the alerts' recall
                       tellable_stories=len(self.labels - (self.baseline or set())),  # labels with no headline before the first rebuild
                       new_alerts_without_recent=self.new_without_recent,
                       repeated=[a for a in self.new_alert_list if self.new_alert_events.count(a["label"]) > 1])
        return out


def _majorities(labels: dict[int, int], truth_of: dict[int, object]) -> dict[int, object]:
    """Each cluster id's most common true label among its members."""
    counts: dict[int, dict] = {}
    for d, l in labels.items():
        if l >= 0:
            bucket = counts.setdefault(l, {})
            t = truth_of.get(d)
            bucket[t] = bucket.get(t, 0) + 1
    return {cid: max(c.items(), key=lambda kv: kv[1])[0] for cid, c in counts.items()}


def run(csv_path: Path, label_col: str, chunks: int, overrides: dict, level: str = "topic", umap_baselines: bool = True,
        tutorial: bool = True, echo: bool = True, rebuild_every: int = 1, shuffle_window: int = 0, order_seed: int = 0) -> dict:
    from service import usecases
    from service.bootstrap import App
    from service.config import load_settings
    from service.domain import Headline, document_id

    rows, fields = _read_rows(csv_path, label_col)
    texts = [Headline(key="", title=r["title"], description=r.get("description") or "", url=None, published_at=None).text for r in rows]
    rows = _shuffled(rows, shuffle_window, order_seed)  # after the texts: the embedding cache follows the data set, not the order
    truth_by_guid = {r["guid"]: r[label_col] for r in rows}
    order_by_guid = {r["guid"]: i for i, r in enumerate(rows)}
    home = Path(tempfile.mkdtemp(prefix="newsclust-quality-"))
    settings = load_settings(home=home, env={}, **overrides)
    embedder = CachedEmbedder(settings, texts)
    app = App(settings, embedder=embedder)
    per_run, timings = [], {"ingest": 0.0, "rebuild": 0.0}
    prev = {"story": {}, "topic": {}}
    pooled = {"story": [], "topic": []}
    followers = {"story": Follower(), "topic": Follower()}
    truth_of = {document_id("guid:" + g.strip()): t for g, t in truth_by_guid.items()}
    size = (len(rows) + chunks - 1) // chunks
    file_of: dict[int, int] = {}  # arrival -> which file since the last rebuild brought it (1: the first)
    since = 0
    for i in range(chunks):
        part = rows[i * size : (i + 1) * size]
        if not part:
            break
        path = home / "inbox" / f"chunk-{i + 1:02d}.csv"
        with path.open("w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(part)
        t0 = time.perf_counter()
        usecases.ingest_file(app, path)
        timings["ingest"] += time.perf_counter() - t0
        since += 1
        file_of.update((document_id("guid:" + r["guid"].strip()), since) for r in part)
        if (i + 1) % rebuild_every and (i + 1) * size < len(rows):
            continue  # the next file arrives before the rebuild (the last file is always followed by one)
        predicted = _predictions(app)
        t0 = time.perf_counter()
        r = usecases.rebuild(app, write_report_after=False)
        timings["rebuild"] += time.perf_counter() - t0
        now = {"story": dict(zip(*(a.tolist() for a in app.runs.run_labels(r.run_id)))),
               "topic": dict(zip(*(a.tolist() for a in app.runs.run_topic_labels(r.run_id))))}
        entry = {"run": r.run_id, "documents": r.documents, "seconds": round(time.perf_counter() - t0, 2),
                 "story": {"clusters": r.stories, "noise": r.noise,
                           **_compare(prev["story"], now["story"], {d: p[0] for d, p in predicted.items()}, pooled["story"])},
                 "topic": {"clusters": r.topics, "noise": r.topic_noise,
                           **_compare(prev["topic"], now["topic"], {d: p[1] for d, p in predicted.items()}, pooled["topic"])}}
        followers["story"].after_rebuild(prev["story"], now["story"], {d: p[0] for d, p in predicted.items()}, truth_of, r.alerts, file_of)
        followers["topic"].after_rebuild(prev["topic"], now["topic"], {d: p[1] for d, p in predicted.items()}, truth_of, file_of=file_of)
        per_run.append(entry)
        if echo:
            print(json.dumps(entry), file=sys.stderr, flush=True)
        prev, since = now, 0

    doc_ids, vectors = app.open_store().all_vectors()
    doc_ids = np.asarray(doc_ids)
    keys = {int(r.id): r.key for r in app.stories.export_rows()}
    guids = [keys[int(d)].split(":", 1)[1] for d in doc_ids]
    truth = np.unique([truth_by_guid[g] for g in guids], return_inverse=True)[1]
    time_order = np.argsort([order_by_guid[g] for g in guids], kind="stable")
    n = len(doc_ids)
    result = {"home": str(home), "csv": csv_path.name, "label": label_col, "level": level, "n": n, "true_clusters": int(truth.max() + 1), "chunks": chunks,
              "rebuild_every": rebuild_every, "shuffle_window": shuffle_window, "order_seed": order_seed,
              "embedder_misses": embedder.misses, "recipes": {}, "seconds": {k: round(v, 1) for k, v in timings.items()}}
    rec = result["recipes"]
    other = "topic" if level == "story" else "story"
    rec[f"ours, {level} level (streamed)"] = scores(truth, np.array([prev[level].get(int(d), -1) for d in doc_ids]))
    rec[f"ours, {other} level (other level, info)"] = scores(truth, np.array([prev[other].get(int(d), -1) for d in doc_ids]))

    from service.clustering.hdbscan_fit import scaled_min_cluster_size

    neigh = _graph(app, vectors, doc_ids)
    half_sqrt = scaled_min_cluster_size(n)

    _labels_seen.clear()
    _labels_seen[f"ours, {level} level (streamed)"] = np.array([prev[level].get(int(d), -1) for d in doc_ids])
    _labels_seen[f"ours, {other} level (other level, info)"] = np.array([prev[other].get(int(d), -1) for d in doc_ids])

    def timed(name, fn):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            labels = np.asarray(fn())
        rec[name] = scores(truth, labels)
        _labels_seen[name] = labels
        result["seconds"][name] = round(time.perf_counter() - t0, 1)

    if umap_baselines:
        timed("BERTopic recipe (UMAP 5-d -> HDBSCAN mcs 10)", lambda: bertopic_recipe(vectors))
    timed("raw kNN graph fast_hdbscan mcs 5", lambda: raw_graph_recipe(neigh, 5))
    timed(f"raw kNN graph fast_hdbscan mcs sqrt(n)/2={half_sqrt}", lambda: raw_graph_recipe(neigh, half_sqrt))

    def in_time_order(labels_sorted):
        labels = np.empty(n, np.int64)
        labels[time_order] = labels_sorted
        return labels

    timed(f"single pass tau {FIXED_TAU:.2f} (fixed default)", lambda: in_time_order(single_pass(vectors[time_order], FIXED_TAU)))
    tuned = {}
    timed("single pass, tau TUNED WITH LABELS", lambda: in_time_order(tuned.setdefault("r", single_pass_tuned(vectors[time_order], truth[time_order], level))[0]))
    name = f"single pass tau {tuned['r'][1]:.2f} (TUNED WITH LABELS)"
    rec[name] = rec.pop("single pass, tau TUNED WITH LABELS")
    _labels_seen[name] = _labels_seen.pop("single pass, tau TUNED WITH LABELS")
    result["seconds"][name] = result["seconds"].pop("single pass, tau TUNED WITH LABELS")
    if tutorial:
        timed("tutorial (dense 50-NN matrix -> hdbscan mcs 3)", lambda: tutorial_recipe(vectors))

    if level == "topic":
        our_stories = np.array([prev["story"].get(int(d), -1) for d in doc_ids])
        add_topic_shape(rec, {k: v for k, v in _labels_seen.items()}, our_stories)
    result["per_run"] = per_run
    for lv in ("story", "topic"):
        kept = [e[lv]["kept_id"] for e in per_run if "kept_id" in e[lv]]
        agree = [e[lv]["arrival_ari"] for e in per_run if "arrival_ari" in e[lv]]
        weights = [e[lv]["arrival_n"] for e in per_run if "arrival_ari" in e[lv]]
        placed = [e[lv]["placed"] for e in per_run if "placed" in e[lv]]
        same = [e[lv]["arrival_same_id"] for e in per_run if "arrival_same_id" in e[lv]]
        pairs = np.array(pooled[lv], np.int64).reshape(-1, 2)
        result[lv] = {"arrival_ari_pooled": round(float(adjusted_rand_score(pairs[:, 0], pairs[:, 1])), 4) if len(pairs) else None,
                      "arrival_same_id_pooled": round(float((pairs[:, 0] == pairs[:, 1]).mean()), 4) if len(pairs) else None,
                      "arrival_pairs": len(pairs),
                      "kept_id_min": min(kept) if kept else None, "kept_id_mean": round(float(np.mean(kept)), 4) if kept else None,
                      "arrival_ari_min": min(agree) if agree else None,
                      "arrival_ari_mean": round(float(np.mean(agree)), 4) if agree else None,
                      "arrival_ari_weighted": round(float(np.average(agree, weights=weights)), 4) if agree else None,
                      "arrival_same_id_min": min(same) if same else None,
                      "placed_mean": round(float(np.mean(placed)), 4) if placed else None,
                      "follower": followers[lv].summary()}
    result["targets"] = _targets(result)
    app.close()
    return result


def _targets(result: dict) -> list[tuple[str, str, bool]]:
    """(what, measured, met) for the issue's targets at this run's level."""
    level, rec = result["level"], result["recipes"]
    ours = rec[f"ours, {level} level (streamed)"]
    baselines = {k: v for k, v in rec.items() if not k.startswith("ours")}
    t = TARGETS[level]
    out = []
    if level == "story":
        out.append((f"pairwise F1 >= {t['pair_f1']}", f"{ours['pair_f1']:.3f}", ours["pair_f1"] >= t["pair_f1"]))
        out.append((f"BCubed F1 >= {t['bcubed_f1']}", f"{ours['bcubed_f1']:.3f}", ours["bcubed_f1"] >= t["bcubed_f1"]))
        for metric in ("pair_f1", "bcubed_f1"):
            name, best = max(((k, v[metric]) for k, v in baselines.items()), key=lambda kv: kv[1])
            out.append((f"{metric} above every baseline in this run (best: {name})", f"{ours[metric] - best:+.3f}", ours[metric] > best))
        s = result["story"]
        ari = s["arrival_ari_pooled"]
        out.append((f"arrival-vs-rebuild ARI >= {t['arrival_ari']} (pooled over all {s['arrival_pairs']} arrivals placed by both; "
                     f"per rebuild min {s['arrival_ari_min']}, mean {s['arrival_ari_mean']})",
                    f"{ari}", ari is not None and ari >= t["arrival_ari"]))
        out.append((f"kept-id >= {t['kept_id']} in every rebuild", f"min {s['kept_id_min']}",
                    s["kept_id_min"] is not None and s["kept_id_min"] >= t["kept_id"]))
    else:
        out.append((f"AMI >= {t['ami']}", f"{ours['ami_all']:.3f}", ours["ami_all"] >= t["ami"]))
        out.append((f"noise <= {t['noise_max']:.0%}", f"{ours['noise_share']:.1%}", ours["noise_share"] <= t["noise_max"]))
        bert = next((v for k, v in rec.items() if k.startswith("BERTopic")), None)
        if bert is not None:
            margin = ours["ami_all"] - bert["ami_all"]
            out.append((f"AMI margin over BERTopic's recipe >= {t['margin_over_bertopic']}", f"{margin:+.3f}", margin >= t["margin_over_bertopic"]))
    return out


def render(result: dict) -> str:
    level = result["level"]
    lines = [f"== {level} level: {result['csv']} (label `{result['label']}`), {result['n']} headlines, {result['true_clusters']} true "
             f"{level} groups, streamed in {result['chunks']} chunks{_order_note(result)} (ingest {result['seconds']['ingest']} s, rebuilds {result['seconds']['rebuild']} s) ==",
             *recipe_table(result)]
    head = f"{'count':>5} {'noise':>6} {'keptID':>6} {'placed':>6} {'arrARI':>6} {'sameID':>6} {'(n)':>5}"
    lines.append(f"{'per rebuild':18} | {'stories':^{len(head)}} | {'topics':^{len(head)}}")
    lines.append(f"{'':18} | {head} | {head}")
    for e in result["per_run"]:
        cells = []
        for lv in ("story", "topic"):
            x = e[lv]
            cells.append(f"{x['clusters']:>5} {x['noise'] / max(e['documents'], 1):6.1%} {_fmt(x.get('kept_id')):>6} {_fmt(x.get('placed')):>6} "
                         f"{_fmt(x.get('arrival_ari')):>6} {_fmt(x.get('arrival_same_id')):>6} {x.get('arrival_n', ''):>5}")
        lines.append(f"{'run ' + str(e['run']) + ' n=' + str(e['documents']):18} | {cells[0]} | {cells[1]}")
    lines.append("keptID: share of documents clustered in this and the last rebuild that kept their id; placed: share of arrivals "
                 "placed at once by prediction; arrARI / sameID: ARI and same-id share between the prediction and the next "
                 "rebuild, over the (n) arrivals placed by both (ARI is 0 when either side puts them all in one cluster).")
    for lv in ("story", "topic"):
        s = result[lv]
        lines.append(f"{lv}: kept-id min {s['kept_id_min']} mean {s['kept_id_mean']}; arrival-vs-rebuild ARI pooled {s['arrival_ari_pooled']} "
                     f"(per rebuild min {s['arrival_ari_min']}, mean {s['arrival_ari_mean']}), same id pooled {s['arrival_same_id_pooled']} "
                     f"(min {s['arrival_same_id_min']}) over {s['arrival_pairs']} arrivals; arrivals placed at once {s['placed_mean']}")
    lines.append("what a follower sees (issue 22): level | ids changed event (docs held) | placed at once of arrivals the rebuild "
                 "put into an existing cluster | placed kept | new alerts: precision, distinct labels told, without recent headlines")
    for lv in ("story", "topic"):
        f = result[lv]["follower"]
        alerts = (f"{f['new_alerts']} new, precision {_fmt(f['new_alert_precision'])}, {f['alerted_stories']} labels told "
                  f"(of {f['tellable_stories']} born after the first rebuild), {f['new_alerts_without_recent']} without recent"
                  if "new_alerts" in f else "-")
        lines.append(f"  {lv:6} | {f['ids_changed_event']}/{f['ids']} ({_fmt(f['changed_event_doc_share'])}) | "
                     f"{_fmt(f['placed_at_once_of_existing'])} of {f['into_existing']} | {_fmt(f['placed_kept'])} of {f['placed']} "
                     f"(moved: {f['moved_to_noise']} to noise, {f['moved_to_new_story']} to a new story, {f['moved_to_old_story']} to "
                     f"another) | {alerts}")
        by_file = f.get("into_existing_by_file") or {}
        if len(by_file) > 1:  # a rebuild after every K-th file: where the arrivals not placed at once came
            lines.append("    placed at once by the file since the rebuild that brought them: " + ", ".join(
                f"file {k}: {placed}/{n}" for k, (n, placed) in by_file.items()))
        repeated = f.get("repeated", [])
        if len(repeated) > REPEATS_SHOWN:
            lines.append(f"    ({len(repeated)} alerts of labels told more than once; the first {REPEATS_SHOWN}:)")
        for a in repeated[:REPEATS_SHOWN]:  # the labels told more than once: what the precision lost
            lines.append(f"    told again: rebuild {a['rebuild']} story {a['story_id']} label {a['label']!s:.40} size {a['size']} "
                         f"recent {a['recent']}: {a['title']!s:.70}")
    lines.append(f"targets ({level} level, issue 13):")
    for what, measured, met in result["targets"]:
        lines.append(f"  [{'MET' if met else 'MISSED'}] {what}: {measured}")
    return "\n".join(lines)


def recipe_table(result: dict) -> list[str]:
    """One row per recipe; at topic level also the largest cluster's share of all documents and stories per cluster."""
    shape = any("largest_share" in v for v in result["recipes"].values())
    extra = f" {'largest':>7} {'st/top med':>10} {'mean':>5} {'1-st':>5}" if shape else ""
    lines = [f"{'recipe':52} {'AMI':>6} {'pairF1':>6} {'BcubF1':>6} {'clusters':>10} {'noise':>6}{extra} {'s':>6}"]
    for name, s in result["recipes"].items():
        secs = result["seconds"].get(name, "")
        more = ""
        if shape:
            more = (f" {s.get('largest_share', 0):7.1%} {_fmt(s.get('stories_per_topic_median')):>10} {_fmt(s.get('stories_per_topic_mean')):>5}"
                    f" {_fmt(s.get('single_story_topics')):>5}")
        lines.append(f"{name[:52]:52} {s['ami_all']:6.3f} {s['pair_f1']:6.3f} {s['bcubed_f1']:6.3f} {s['clusters']:>5}/{result['true_clusters']:<4} "
                     f"{s['noise_share']:6.1%}{more} {secs:>6}")
    lines.append("AMI: noise as one label; pairF1, BcubF1: noise documents as singletons; clusters: found/true.")
    if shape:
        lines.append(f"largest: the largest cluster's share of all documents; st/top: stories per cluster (median, mean; 1-st: share of "
                     f"clusters holding one story), a story counted in the cluster most of its members sit in; stories: "
                     f"{result.get('stories_from', 'our final story level')}.")
    return lines


_labels_seen: dict[str, np.ndarray] = {}  # the last streamed run's labels per recipe (for the topic-shape columns)


def topic_shape(labels: np.ndarray, stories: np.ndarray) -> dict:
    """The guards' figures for one labelling: the largest cluster's share of all documents, and how many stories
    (given) each cluster holds, a story counted once, in the cluster most of its members sit in."""
    from service.clustering.topics import majority_topics

    labels, stories = np.asarray(labels, np.int64), np.asarray(stories, np.int64)
    out = {"largest_share": round(float(np.bincount(labels[labels >= 0]).max() / len(labels)), 4) if (labels >= 0).any() else 0.0}
    if (stories >= 0).any() and (labels >= 0).any():
        compact = np.unique(labels, return_inverse=True)[1] - (1 if (labels < 0).any() else 0)
        story_topic, _ = majority_topics(np.unique(stories, return_inverse=True)[1] - (1 if (stories < 0).any() else 0), compact)
        per = np.bincount(story_topic[story_topic >= 0])
        per = per[per > 0]
        if len(per):
            out.update({"stories_per_topic_median": float(np.median(per)), "stories_per_topic_mean": round(float(per.mean()), 2),
                        "single_story_topics": round(float((per == 1).mean()), 3)})
    return out


def add_topic_shape(rec: dict, labels_by_recipe: dict, stories: np.ndarray) -> None:
    for name, labels in labels_by_recipe.items():
        if name in rec:
            rec[name].update(topic_shape(labels, stories))


# ---- a vector-level run: a generated topic-structured stream, fitted straight from its kNN graph -------------------
def synthetic_run(kind: str, n: int, seed: int = 0, umap_baselines: bool = True, k: int = 15, chunks: int = 0) -> dict:
    """Generated vectors (bench/synthetic.py) -> our kNN graph -> fit_two_levels and levels.settle with no last run (what
    a first rebuild ships) and baselines, scored at the topic level; the generator's true stories
    count stories per topic. Ceiling: each document labelled by the nearest true topic centroid (centroids of the
    true members: an oracle no method has), background included, as a bound on what the vectors hold."""
    from bench.synthetic import TOPIC_STRUCTURED, StoryShape, story_shaped_vectors
    from service.clustering.graph import knn
    from service.clustering.hdbscan_fit import scaled_min_cluster_size
    from service.clustering.levels import settle
    from service.clustering.two_level import TwoLevelParams, fit_two_levels

    shape = TOPIC_STRUCTURED if kind == "topic_structured" else StoryShape()
    vectors, story, topic = story_shaped_vectors(n, seed=seed, shape=shape)
    result = {"csv": f"synthetic {kind} (seed {seed})", "label": "topic", "level": "topic", "n": n,
              "true_clusters": int(len(np.unique(topic[topic >= 0]))), "true_stories": int(len(np.unique(story[story >= 0]))),
              "stories_from": "the generator's true stories", "recipes": {}, "seconds": {}}
    rec, labels_by = result["recipes"], {}
    t0 = time.perf_counter()
    neigh = knn(vectors, k)
    result["seconds"]["knn"] = round(time.perf_counter() - t0, 1)

    def timed(name, fn):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            labels = np.asarray(fn())
        result["seconds"][name] = round(time.perf_counter() - t0, 2)
        rec[name] = scores(topic, labels)
        labels_by[name] = labels

    fits = {}

    def first_rebuild():  # what a first rebuild ships: the fit, settled with no last run to hold
        fit = fit_two_levels(neigh, TwoLevelParams(), vectors)
        fits["f"] = settle(fit, neigh, vectors, None)
        return fits["f"].topic_labels

    timed("ours, topic level (one fit)", first_rebuild)
    rec["ours, story level (info, vs topics)"] = scores(topic, fits["f"].story_labels)
    labels_by["ours, story level (info, vs topics)"] = fits["f"].story_labels
    result["ours_story_ami_vs_true_stories"] = scores(story, fits["f"].story_labels)["ami_all"]
    if umap_baselines and n <= 30_000:
        timed("BERTopic recipe (UMAP 5-d -> HDBSCAN mcs 10)", lambda: bertopic_recipe(vectors))
    timed(f"raw kNN graph fast_hdbscan mcs sqrt(n)/2={scaled_min_cluster_size(n)}", lambda: raw_graph_recipe(neigh, scaled_min_cluster_size(n)))
    member = topic >= 0
    cent = np.zeros((topic.max() + 1, vectors.shape[1]), np.float64)
    np.add.at(cent, topic[member], vectors[member])
    cent /= np.maximum(np.linalg.norm(cent, axis=1, keepdims=True), 1e-12)
    timed("CEILING: nearest true topic centroid (oracle)", lambda: np.argmax(vectors @ cent.T.astype(np.float32), axis=1))
    add_topic_shape(rec, labels_by, story)
    return result


def _order_note(result: dict) -> str:
    note = f", a rebuild after every {result['rebuild_every']}" if result.get("rebuild_every", 1) > 1 else ""
    if result.get("shuffle_window", 0) > 1:
        note += f", shuffled in blocks of {result['shuffle_window']} rows (seed {result['order_seed']})"
    return note


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--level", choices=("both", "story", "topic"), default="both", help="which level(s) to run (default both)")
    ap.add_argument("--csv", type=Path, help="labelled CSV (only with --level story or topic; default the level's shared file)")
    ap.add_argument("--label", help="label column of --csv (default: story / topic)")
    ap.add_argument("--chunks", type=int, default=10, help="files the stream is cut into (default 10)")
    ap.add_argument("--rebuild-every", type=int, default=1, metavar="K",
                    help="rebuild after every K-th file (and after the last one); default 1")
    ap.add_argument("--shuffle-window", type=int, default=0, metavar="ROWS",
                    help="shuffle the time-ordered rows inside consecutive blocks of ROWS (0: time order; >= rows: all)")
    ap.add_argument("--order-seed", type=int, default=0, help="seed of --shuffle-window")
    ap.add_argument("--json", type=Path, help="write all results (with per-rebuild figures) here")
    ap.add_argument("--skip-umap", action="store_true", help="leave out BERTopic's recipe (the slowest baseline)")
    ap.add_argument("--skip-tutorial", action="store_true", help="leave out the tutorial's dense-matrix baseline")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a setting, e.g. --set story_min_size=4")
    ap.add_argument("--synthetic", choices=("topic_structured", "story_shaped"),
                    help="instead of a CSV: generated vectors (bench/synthetic.py), topic level, fitted from the kNN graph")
    ap.add_argument("--n", type=int, default=20_000, help="documents of --synthetic (default 20000)")
    ap.add_argument("--seed", type=int, default=0, help="seed of --synthetic")
    args = ap.parse_args()
    if args.synthetic:
        result = synthetic_run(args.synthetic, args.n, args.seed, umap_baselines=not args.skip_umap)
        print(f"== topic level: {result['csv']}, {result['n']} vectors, {result['true_clusters']} true topics, "
              f"{result['true_stories']} true stories; our story AMI vs true stories {result['ours_story_ami_vs_true_stories']:.3f}; "
              f"kNN graph {result['seconds']['knn']} s ==")
        print("\n".join(recipe_table(result)), flush=True)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1, default=str))
        return
    if args.csv and args.level == "both":
        ap.error("--csv needs --level story or --level topic")
    from service.config import _coerce

    overrides = {k: _coerce(k, v, "--set") for k, v in (kv.split("=", 1) for kv in args.set)}
    levels = ("story", "topic") if args.level == "both" else (args.level,)
    results = []
    for level in levels:
        csv_path, label = LEVELS[level]
        csv_path, label = args.csv or csv_path, args.label or label
        result = run(csv_path, label, args.chunks, overrides, level, umap_baselines=not args.skip_umap, tutorial=not args.skip_tutorial,
                     rebuild_every=max(args.rebuild_every, 1), shuffle_window=args.shuffle_window, order_seed=args.order_seed)
        results.append(result)
        print(render(result), flush=True)
        print(flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
