"""Two-level engine (service/clustering/two_level.py) against baselines, batch, on one set of MiniLM vectors.

    python bench/stories.py [--scale 100000] [--skip-umap]

Story level on ../shared/data/stories_2k_labeled.csv (`story`), topic level on
../shared/data/agnews_4k_labeled.csv (`topic`); labels only score. Prints one table: AMI (noise as
one label), pairwise F1 and BCubed F1 (noise documents as singletons), clusters against the true
count, noise share, seconds. Baselines in the same run: raw-graph fast_hdbscan at min_cluster_size 5
and sqrt(n)/2, newsclust's old one-level default (UMAP seeded from our graph -> HDBSCAN), BERTopic's
recipe (UMAP 5-d n_neighbors 15 cosine -> HDBSCAN mcs 10) and a single pass (join the nearest
centroid at cosine >= tau), tau chosen with the labels (marked: an upper bound, not a default).
Embeddings are cached under bench/out/ by a hash of the texts. --scale N also times the two-level
fit on N synthetic news-shaped vectors (graph built beforehand, as a rebuild reads it).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out"
K = 15


def embed_cached(texts: list[str]) -> np.ndarray:
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = OUT / f"minilm-{key}.npy"
    if path.exists():
        return np.load(path)
    from service.adapters.embedders import MiniLMEmbedder

    vectors = np.asarray(MiniLMEmbedder().embed(texts), np.float32)
    OUT.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def load(name: str, label: str) -> tuple[np.ndarray, np.ndarray]:
    with open(DATA / name, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    truth = np.unique([r[label] for r in rows], return_inverse=True)[1].astype(np.int64)
    return embed_cached([r["title"] for r in rows]), truth


# ---- metrics -------------------------------------------------------------------------------------
def _singletons(labels: np.ndarray) -> np.ndarray:
    """Noise documents each their own cluster, every label renumbered 0..c-1."""
    labels = np.asarray(labels).copy()
    noise = labels < 0
    labels[noise] = labels.max(initial=-1) + 1 + np.arange(noise.sum())
    return np.unique(labels, return_inverse=True)[1]


def pair_f1(truth: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics.cluster import contingency_matrix

    lab = _singletons(labels)
    pairs = lambda x: float((x * (x - 1) / 2).sum())  # noqa: E731
    tp = pairs(contingency_matrix(truth, lab, sparse=True).data.astype(np.float64))
    pp, tt = pairs(np.bincount(lab).astype(np.float64)), pairs(np.bincount(truth).astype(np.float64))
    p, r = (tp / pp if pp else 0.0), (tp / tt if tt else 0.0)
    return 2 * p * r / (p + r) if p + r else 0.0


def bcubed_f1(truth: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics.cluster import contingency_matrix

    lab = _singletons(labels)
    c = contingency_matrix(truth, lab, sparse=True).tocoo()
    n = len(truth)
    p = float((c.data.astype(np.float64) ** 2 / np.bincount(lab)[c.col]).sum() / n)
    r = float((c.data.astype(np.float64) ** 2 / np.bincount(truth)[c.row]).sum() / n)
    return 2 * p * r / (p + r) if p + r else 0.0


def score(truth: np.ndarray, labels: np.ndarray) -> dict:
    from sklearn.metrics import adjusted_mutual_info_score

    labels = np.asarray(labels)
    return {"ami": adjusted_mutual_info_score(truth, labels), "pair_f1": pair_f1(truth, labels), "bcubed_f1": bcubed_f1(truth, labels),
            "clusters": len(np.unique(labels[labels >= 0])), "noise": float((labels < 0).mean())}


# ---- recipes -------------------------------------------------------------------------------------
def raw_graph(neigh, mcs: int) -> np.ndarray:
    from fast_hdbscan.hdbscan import fast_hdbscan

    from service.clustering.graph import directed_graph

    return np.asarray(fast_hdbscan(directed_graph(neigh), metric="precomputed", min_samples=5, min_cluster_size=int(mcs))[0])


def umap_seeded(neigh, vectors: np.ndarray, dims: int = 5, seed: int = 42) -> np.ndarray:
    """The old one-level default, kept as a baseline: UMAP to `dims` seeded with our neighbour lists (no second
    neighbour search), then HDBSCAN there at min_cluster_size sqrt(n)/2, min_samples 5, eom (leaf if one cluster
    would hold over half the documents)."""
    import warnings

    import umap
    from fast_hdbscan.hdbscan import fast_hdbscan

    from service.clustering.hdbscan_fit import scaled_min_cluster_size

    n = len(vectors)
    idx = np.hstack([np.arange(n, dtype=np.int64)[:, None], neigh.indices])  # self first, as UMAP expects
    dist = np.hstack([np.zeros((n, 1), np.float32), neigh.distances])
    missing = idx < 0  # fewer neighbours than k: point at self, far away
    idx[missing] = np.broadcast_to(np.arange(n)[:, None], idx.shape)[missing]
    dist[missing] = 2.0
    cos = np.clip(1.0 - dist.astype(np.float64) ** 2 / 2.0, -1.0, 1.0)  # our sqrt(2-2cos) back to UMAP's cosine distance
    reducer = umap.UMAP(n_neighbors=idx.shape[1], n_components=dims, min_dist=0.0, metric="cosine", random_state=seed, n_jobs=1,
                        precomputed_knn=(idx, (1.0 - cos).astype(np.float32), None), init="spectral", low_memory=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "no NNDescent index, transform unavailable": we never transform
        data = reducer.fit_transform(vectors).astype(np.float32)

    def run(selection: str) -> np.ndarray:
        return np.asarray(fast_hdbscan(data, min_samples=5, min_cluster_size=scaled_min_cluster_size(n),
                                       cluster_selection_method=selection)[0])

    labels = run("eom")
    clustered = labels[labels >= 0]
    if clustered.size and np.bincount(clustered).max() / n > 0.5:
        labels = run("leaf")
    return labels


def single_pass(vectors: np.ndarray, tau: float) -> np.ndarray:
    """Each document in file (time) order joins the most similar centroid at cosine >= tau, else starts one."""
    sums = np.zeros((0, vectors.shape[1]), np.float64)
    labels = np.empty(len(vectors), np.int64)
    for i, v in enumerate(vectors):
        if len(sums):
            cent = sums / np.linalg.norm(sums, axis=1, keepdims=True)
            sim = cent @ v
            j = int(sim.argmax())
            if sim[j] >= tau:
                sums[j] += v
                labels[i] = j
                continue
        sums = np.vstack([sums, v[None].astype(np.float64)])
        labels[i] = len(sums) - 1
    return labels


def single_pass_tuned(vectors: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, float]:
    """The best tau by BCubed F1 against the labels: an upper bound for this recipe, not something a stream could pick."""
    best = max(((single_pass(vectors, tau), tau) for tau in (0.3, 0.4, 0.5, 0.6, 0.7)), key=lambda lt: bcubed_f1(truth, lt[0]))
    return best


def rows_for(level: str, vectors: np.ndarray, truth: np.ndarray, skip_umap: bool) -> list[tuple[str, dict, float]]:
    from service.clustering.graph import knn
    from service.clustering.hdbscan_fit import scaled_min_cluster_size
    from service.clustering.two_level import fit_two_levels

    n = len(vectors)
    neigh = knn(vectors, K)
    out = []

    def timed(name, fn):
        t = time.perf_counter()
        labels = fn()
        out.append((name, score(truth, labels), time.perf_counter() - t))

    fit = {}
    timed(f"ours: two-level, {level}", lambda: getattr(fit.setdefault("f", fit_two_levels(neigh, vectors=vectors)), f"{level}_labels"))
    other = "topic" if level == "story" else "story"
    out.append((f"ours: two-level, {other} (other level)", score(truth, getattr(fit["f"], f"{other}_labels")), 0.0))
    timed("raw graph fast_hdbscan mcs 5", lambda: raw_graph(neigh, 5))
    timed(f"raw graph fast_hdbscan mcs sqrt(n)/2={scaled_min_cluster_size(n)}", lambda: raw_graph(neigh, scaled_min_cluster_size(n)))
    if not skip_umap:
        from bench.quality import bertopic_recipe

        timed("old one-level default (UMAP seeded -> HDBSCAN)", lambda: umap_seeded(neigh, vectors))
        timed("BERTopic recipe (UMAP 5-d -> HDBSCAN mcs 10)", lambda: bertopic_recipe(vectors))
    tuned = {}
    timed("single pass, tau tuned WITH LABELS", lambda: tuned.setdefault("r", single_pass_tuned(vectors, truth))[0])
    out[-1] = (out[-1][0] + f" ({tuned['r'][1]:.1f})", out[-1][1], out[-1][2])
    return out


def scale(n: int) -> dict:
    from bench.synthetic import news_like_vectors
    from service.clustering.graph import knn
    from service.clustering.two_level import fit_two_levels
    from sklearn.metrics import adjusted_mutual_info_score

    vectors, truth = news_like_vectors(n)
    t = time.perf_counter()
    neigh = knn(vectors, K)
    graph_s = time.perf_counter() - t
    t = time.perf_counter()
    fit = fit_two_levels(neigh, vectors=vectors)
    fit_s = time.perf_counter() - t
    from bench.metrics import peak_rss_mb

    return {"n": n, "graph_s": round(graph_s, 1), "two_level_fit_s": round(fit_s, 2), "stories": fit.n_stories, "topics": fit.n_topics,
            "story_noise": round(float((fit.story_labels < 0).mean()), 3),
            "story_ami": round(adjusted_mutual_info_score(truth, fit.story_labels), 3), "peak_rss_mb": round(peak_rss_mb())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=0, help="also time the fit on this many synthetic documents")
    ap.add_argument("--skip-umap", action="store_true", help="leave out the UMAP baselines (the slow ones)")
    args = ap.parse_args()
    import warnings

    warnings.filterwarnings("ignore")
    print(f"{'level':6} {'data':9} {'recipe':52} {'AMI':>6} {'pairF1':>6} {'BcubF1':>6} {'clusters':>9} {'noise':>6} {'s':>6}")
    for level, name, label in (("story", "stories_2k_labeled.csv", "story"), ("topic", "agnews_4k_labeled.csv", "topic")):
        vectors, truth = load(name, label)
        for recipe, s, secs in rows_for(level, vectors, truth, args.skip_umap):
            print(f"{level:6} {name[:9]:9} {recipe[:52]:52} {s['ami']:6.3f} {s['pair_f1']:6.3f} {s['bcubed_f1']:6.3f} "
                  f"{s['clusters']:>4}/{truth.max() + 1:<4} {s['noise']:6.1%} {secs:6.2f}")
    if args.scale:
        print(scale(args.scale))


if __name__ == "__main__":
    main()
