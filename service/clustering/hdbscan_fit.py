"""kNN graph (+ vectors) -> labels, membership probabilities, GLOSH outlier scores, prediction state.

Two recipes, chosen by the quality harness (bench/quality.py) and the scale benchmark
(bench/scale.py), figures in the README; "auto" (the default) takes "umap" up to
umap_max_documents and "graph" above, where UMAP's optimisation costs minutes a rebuild
(~50 s at 50k, ~140 s at 100k on 2 cores; single-threaded because seeded, so rebuilds repeat):
- "umap" (default): UMAP to a few dimensions started from *our* kNN graph (no second
  neighbour search), then HDBSCAN there. Density is meaningful in 5-d and not in 384-d:
  on AG News it lifts AMI from ~0.2 (raw graph) to ~0.36 at a fraction of the noise.
- "graph": HDBSCAN straight on the sparse 384-d graph through fast_hdbscan's precomputed
  path (keeps duplicate zero distances, bridges disconnected components). Cheapest at
  scale; coarser quality on real news.
Either way the state for placing arrivals is measured in the original space, where
arrivals' Milvus neighbours live: core distances, and per cluster its loosest internal
mutual-reachability MST edge and its densest core.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.sparse.csgraph import minimum_spanning_tree

from ..domain import NOISE
from .graph import Neighbours, core_distances, directed_graph, mutual_reachability, symmetric_graph

RECIPES = ("auto", "umap", "graph")
# Below this many documents UMAP has too few neighbours to work with: the graph recipe takes over.
UMAP_MIN_DOCUMENTS = 50


@dataclass(frozen=True)
class HdbscanParams:
    min_cluster_size: int = 0  # 0: scaled with n by scaled_min_cluster_size
    min_samples: int = 5
    selection: str = "eom"  # "eom" or "leaf"
    recipe: str = "auto"
    umap_max_documents: int = 50_000
    umap_dims: int = 5
    max_cluster_share: float = 0.5  # eom: a cluster above this share of documents is a collapse; re-select by leaf
    seed: int = 42


def scaled_min_cluster_size(n: int) -> int:
    """Stories grow with the stream: a fixed size shatters big data or drowns small stories. sqrt(n)/2 won the harness."""
    return int(max(5, min(200, round(math.sqrt(max(n, 1)) / 2))))


@dataclass(frozen=True)
class Fit:
    labels: np.ndarray  # (n,) int64, 0..c-1 or NOISE
    probabilities: np.ndarray  # (n,) float32 in [0, 1]
    outlier_scores: np.ndarray  # (n,) float32 in [0, 1], GLOSH
    core_distances: np.ndarray  # (n,) float32, original space
    cluster_max_edge: np.ndarray  # (c,) loosest mutual-reachability MST edge inside each cluster, original space
    cluster_min_core: np.ndarray  # (c,) smallest core distance inside each cluster
    min_cluster_size: int
    recipe: str

    @property
    def n_clusters(self) -> int:
        return len(self.cluster_max_edge)


@dataclass(frozen=True)
class Anchor:
    """The previous run's labels, for hysteresis (identity.stabilize): doc ids sorted, persistent labels."""

    doc_ids: np.ndarray
    labels: np.ndarray
    new_doc_ids: np.ndarray
    hold_margin: float = 0.35
    placed: tuple[np.ndarray, np.ndarray] | None = None  # arrivals placed since: (doc ids, persistent ids)


def fit_clusters(neigh: Neighbours, vectors: np.ndarray, params: HdbscanParams, anchor: Anchor | None = None) -> Fit:
    n = neigh.indices.shape[0]
    mcs = params.min_cluster_size or scaled_min_cluster_size(n)
    recipe = resolve_recipe(params, n)
    core = core_distances(neigh, params.min_samples)
    if n < max(2, mcs) or neigh.k == 0:
        return _all_noise(n, mcs, core, recipe)
    if recipe == "umap":
        data, metric = umap_embedding(neigh, vectors, params.umap_dims, params.seed), "euclidean"
    elif recipe == "graph":
        data, metric = directed_graph(neigh), "precomputed"
    labels, probabilities, condensed = _hdbscan(data, metric, mcs, params)
    del data  # the graph or the embedding: cluster_max_edges below builds its own, smaller one
    if anchor is not None:
        from .identity import stabilize

        labels = stabilize(anchor.doc_ids, anchor.labels, anchor.new_doc_ids, labels, vectors=vectors, hold_margin=anchor.hold_margin,
                           placed=anchor.placed)
    c = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    return Fit(
        labels=labels,
        probabilities=probabilities,
        outlier_scores=glosh_scores(condensed, n),
        core_distances=core,
        cluster_max_edge=cluster_max_edges(neigh, core, labels, c),
        cluster_min_core=cluster_min_core(core, labels, c),
        min_cluster_size=int(mcs),
        recipe=recipe,
    )


def umap_embedding(neigh: Neighbours, vectors: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """UMAP seeded with our neighbour lists (self first, as UMAP expects), so it skips its own search."""
    import umap

    n = len(vectors)
    idx = np.hstack([np.arange(n, dtype=np.int64)[:, None], neigh.indices])
    dist = np.hstack([np.zeros((n, 1), np.float32), neigh.distances])
    missing = idx < 0  # fewer neighbours than k: point at self, far away
    idx[missing] = np.broadcast_to(np.arange(n)[:, None], idx.shape)[missing]
    dist[missing] = 2.0
    cos = np.clip(1.0 - dist.astype(np.float64) ** 2 / 2.0, -1.0, 1.0)  # our sqrt(2-2cos) back to UMAP's cosine distance
    reducer = umap.UMAP(n_neighbors=idx.shape[1], n_components=dims, min_dist=0.0, metric="cosine", random_state=seed, n_jobs=1,
                        precomputed_knn=(idx, (1.0 - cos).astype(np.float32), None), init="spectral", low_memory=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "no NNDescent index, transform unavailable": we never transform here
        return reducer.fit_transform(vectors).astype(np.float32)


def resolve_recipe(params: HdbscanParams, n: int) -> str:
    if params.recipe not in RECIPES:
        raise ValueError(f"unknown recipe {params.recipe!r}: use one of {RECIPES}")
    if n < UMAP_MIN_DOCUMENTS or (params.recipe == "auto" and n > params.umap_max_documents):
        return "graph"
    return "umap" if params.recipe == "auto" else params.recipe


def _hdbscan(data, metric: str, mcs: int, params: HdbscanParams):
    from fast_hdbscan.hdbscan import fast_hdbscan

    def run(selection: str):
        return fast_hdbscan(data, metric=metric, min_samples=int(params.min_samples), min_cluster_size=int(mcs),
                            cluster_selection_method=selection, return_trees=True)

    result = run(params.selection)
    if params.selection == "eom" and _largest_share(result[0]) > params.max_cluster_share:
        result = run("leaf")
    labels, probabilities, _slt, condensed, *_ = result
    return np.asarray(labels, dtype=np.int64), np.asarray(probabilities, dtype=np.float32), condensed


def _all_noise(n: int, mcs: int, core: np.ndarray, recipe: str) -> Fit:
    return Fit(
        labels=np.full(n, NOISE, np.int64),
        probabilities=np.zeros(n, np.float32),
        outlier_scores=np.ones(n, np.float32),
        core_distances=core,
        cluster_max_edge=np.zeros(0, np.float32),
        cluster_min_core=np.zeros(0, np.float32),
        min_cluster_size=mcs,
        recipe=recipe,
    )


def _largest_share(labels: np.ndarray) -> float:
    clustered = labels[labels >= 0]
    return 0.0 if clustered.size == 0 else np.bincount(clustered).max() / len(labels)


def cluster_max_edges(neigh: Neighbours, core: np.ndarray, labels: np.ndarray, c: int) -> np.ndarray:
    """The threshold for placing arrivals: the loosest link each cluster accepted among its own members.

    Measured on the minimum spanning forest of the mutual-reachability kNN graph restricted
    to edges inside one cluster, in the original space.
    """
    out = np.zeros(c, np.float32)
    if c == 0:
        return out
    # links leaving a cluster dropped before the graph is made symmetric: only the inside is ever built
    own = labels[np.maximum(neigh.indices, 0)]
    inside = (neigh.indices >= 0) & (own == labels[:, None]) & (labels[:, None] >= 0)
    del own
    mr = symmetric_graph(Neighbours(np.where(inside, neigh.indices, -1), neigh.distances), mutual_reachability(neigh, core))
    forest = minimum_spanning_tree(mr).tocoo()
    np.maximum.at(out, labels[forest.row], forest.data.astype(np.float32))
    return out


def cluster_min_core(core: np.ndarray, labels: np.ndarray, c: int) -> np.ndarray:
    """The densest core distance inside each cluster (a placed arrival's strength is measured against it)."""
    out = np.full(c, np.inf, np.float32)
    member = labels >= 0
    np.minimum.at(out, labels[member], core[member])
    return out


def glosh_scores(condensed, n: int) -> np.ndarray:
    """GLOSH: 1 - λ(point leaves) / λmax(the cluster it leaves, with its subtree)."""
    parent = np.asarray(condensed.parent, dtype=np.int64)
    child = np.asarray(condensed.child, dtype=np.int64)
    lam = np.asarray(condensed.lambda_val, dtype=np.float64)
    scores = np.ones(n, np.float32)
    if parent.size == 0:
        return scores
    lam = np.where(np.isfinite(lam), lam, np.finfo(np.float64).max / 4)
    top = int(max(parent.max(), child.max())) + 1
    deaths = np.zeros(top, np.float64)
    np.maximum.at(deaths, parent, lam)
    is_cluster = child >= n
    # children carry larger ids than their parents: sweep deepest first to fold subtrees up
    for i in np.flatnonzero(is_cluster)[np.argsort(-child[is_cluster], kind="stable")]:
        deaths[parent[i]] = max(deaths[parent[i]], deaths[child[i]])
    points = ~is_cluster
    p, pl = child[points], lam[points]
    dmax = deaths[parent[points]]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(dmax > 0, (dmax - pl) / dmax, 0.0)
    scores[p] = np.clip(s, 0.0, 1.0)
    return scores
